import { describe, expect, it } from "bun:test";
import { renderStatus } from "../src/cli/commands/status";
import type { FakeHandler } from "./helpers/fake-upstream";
import { TOKENS, startGateway } from "./helpers/gateway-harness";
import { parsePrometheusText, sampleValue } from "./helpers/prometheus-text";

/** The usage the fake upstream answers with, as the request's `scripted_usage` field says (the provider's own field names). */
type ScriptedUsage = Record<string, unknown>;

const encoder = new TextEncoder();

/** An SSE body sent one event per chunk, so the gateway's meter sees a real stream. */
function eventStream(events: Array<{ event?: string; data: unknown }>): Response {
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const { event, data } of events) {
        controller.enqueue(
          encoder.encode(
            `${event ? `event: ${event}\n` : ""}data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`,
          ),
        );
      }
      controller.close();
    },
  });
  return new Response(body, { headers: { "content-type": "text/event-stream" } });
}

/**
 * OpenAI chat completions and Anthropic messages, JSON or streamed, reporting whatever usage the
 * request scripted: OpenAI puts it on the final chunk, Anthropic splits it between message_start
 * (input and cache figures) and message_delta (the output total).
 */
const scriptedUpstream: FakeHandler = (_req, call) => {
  const body = JSON.parse(call.body) as { stream?: boolean; scripted_usage: ScriptedUsage };
  const usage = body.scripted_usage;
  if (call.path.endsWith("/chat/completions")) {
    if (!body.stream)
      return Response.json({
        id: "c",
        object: "chat.completion",
        choices: [{ index: 0, message: { role: "assistant", content: "hi" } }],
        usage,
      });
    return eventStream([
      { data: { id: "c", object: "chat.completion.chunk", choices: [{ index: 0, delta: { content: "hi" } }] } },
      { data: { id: "c", object: "chat.completion.chunk", choices: [], usage } },
      { data: "[DONE]" },
    ]);
  }
  if (!body.stream) return Response.json({ id: "m", type: "message", content: [{ type: "text", text: "hi" }], usage });
  const { output_tokens, ...start } = usage;
  return eventStream([
    {
      event: "message_start",
      data: { type: "message_start", message: { id: "m", usage: { ...start, output_tokens: 1 } } },
    },
    {
      event: "content_block_delta",
      data: { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "hi" } },
    },
    {
      event: "message_delta",
      data: { type: "message_delta", delta: { stop_reason: "end_turn" }, usage: { output_tokens } },
    },
    { event: "message_stop", data: { type: "message_stop" } },
  ]);
};

/** Pools `openai` and `anthropic` (one key each) in front of the scripted upstream; sticky sessions are on by default. */
function startCachingGateway() {
  const pool = (fakeUrl: string, upstream: Record<string, unknown> = {}) => ({
    tokens_file: "tokens.txt",
    upstream: { listen: "127.0.0.1:0", base_url: fakeUrl, cooldown_sec: 0, ...upstream },
  });
  return startGateway({
    handler: scriptedUpstream,
    tokens: { a: TOKENS.a },
    config: (fakeUrl) => ({
      state_file: "state.db",
      cooldown_sec: 0,
      server: { addr: "127.0.0.1:0" },
      pools: {
        openai: pool(fakeUrl),
        anthropic: pool(fakeUrl, { auth_header: "x-api-key", auth_template: "{token}" }),
      },
    }),
  });
}

async function send(url: string, path: string, session: string, usage: ScriptedUsage, stream = false): Promise<void> {
  const response = await fetch(`${url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-session-id": session },
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }], stream, scripted_usage: usage }),
  });
  expect(response.status).toBe(200);
  // Read to the end: the gateway releases the key, with the usage it saw, when the body is done.
  await response.text();
}

const openai = (prompt: number, cached: number) => ({
  prompt_tokens: prompt,
  completion_tokens: 50,
  total_tokens: prompt + 50,
  prompt_tokens_details: { cached_tokens: cached },
});
const anthropic = (input: number, read: number, write: number) => ({
  input_tokens: input,
  cache_read_input_tokens: read,
  cache_creation_input_tokens: write,
  output_tokens: 20,
});

describe("prompt-cache accounting through the gateway", () => {
  it("counts cache reads and writes from OpenAI and Anthropic answers, plain and streamed, per key, pool and session", async () => {
    await using gw = await startCachingGateway();
    // OpenAI: cached_tokens are a part of prompt_tokens.
    await send(gw.url, "/openai/v1/chat/completions", "o1", openai(1000, 800));
    await send(gw.url, "/openai/v1/chat/completions", "o1", openai(1000, 600), true);
    // Anthropic: cache reads and writes come apart from input_tokens. A warm session writes its
    // prefix to the cache once, then reads it; a cold one never caches.
    await send(gw.url, "/anthropic/v1/messages", "warm", anthropic(100, 0, 900));
    await send(gw.url, "/anthropic/v1/messages", "warm", anthropic(100, 900, 0), true);
    await send(gw.url, "/anthropic/v1/messages", "cold", { input_tokens: 1000, output_tokens: 20 });

    const usageOf = async (pool: string) =>
      (await (await gw.kp.fetch(`/pools/${pool}/usage?window=hour`)).json()).totals;
    const cacheFields = (u: Record<string, unknown>) => ({
      input: u.input_tokens,
      cached: u.cached_tokens,
      write: u.cache_write_tokens,
      ratio: u.cache_hit_ratio,
    });
    expect(cacheFields(await usageOf("openai"))).toEqual({ input: 2000, cached: 1400, write: 0, ratio: 0.7 });
    expect(cacheFields(await usageOf("anthropic"))).toEqual({ input: 3000, cached: 900, write: 900, ratio: 0.3 });

    // /status: per key and per pool, over the last day.
    const status = await (await gw.kp.fetch("/status")).json();
    const keyRatios = Object.fromEntries(
      status.keys.map((k: { pool: string; usage: { cache_hit_ratio: number } }) => [k.pool, k.usage.cache_hit_ratio]),
    );
    expect(keyRatios).toEqual({ openai: 0.7, anthropic: 0.3 });
    expect(cacheFields(status.pools.anthropic.usage)).toEqual({ input: 3000, cached: 900, write: 900, ratio: 0.3 });
    expect(cacheFields(status.pools.openai.usage)).toEqual({ input: 2000, cached: 1400, write: 0, ratio: 0.7 });

    // GET /sessions: most input first, each with its own ratio.
    const sessions = await (await gw.kp.fetch("/sessions?pool=anthropic")).json();
    expect(sessions).toEqual({
      pool: "anthropic",
      sessions: [
        {
          session: "warm",
          key: "a",
          requests: 2,
          input_tokens: 2000,
          output_tokens: 40,
          cached_tokens: 900,
          cache_write_tokens: 900,
          cache_hit_ratio: 0.45,
          expires_at: expect.any(String),
        },
        {
          session: "cold",
          key: "a",
          requests: 1,
          input_tokens: 1000,
          output_tokens: 20,
          cached_tokens: 0,
          cache_write_tokens: 0,
          cache_hit_ratio: 0,
          expires_at: expect.any(String),
        },
      ],
    });
    const top = await (await gw.kp.fetch("/sessions?pool=openai&limit=1")).json();
    expect(
      top.sessions.map((s: { session: string; cache_hit_ratio: number }) => [s.session, s.cache_hit_ratio]),
    ).toEqual([["o1", 0.7]]);

    // Metrics: reads and writes by key; input tokens count every prompt token for both providers.
    const samples = parsePrometheusText(await (await gw.kp.fetch("/metrics")).text());
    const metric = (name: string, labels: Record<string, string>) => sampleValue(samples, name, labels);
    expect({
      openaiRead: metric("keypool_cached_tokens_total", { pool: "openai", key: "a", kind: "read" }),
      openaiWrite: metric("keypool_cached_tokens_total", { pool: "openai", key: "a", kind: "write" }),
      anthropicRead: metric("keypool_cached_tokens_total", { pool: "anthropic", key: "a", kind: "read" }),
      anthropicWrite: metric("keypool_cached_tokens_total", { pool: "anthropic", key: "a", kind: "write" }),
      anthropicInput: metric("keypool_tokens_total", { pool: "anthropic", key: "a", direction: "input" }),
    }).toEqual({
      openaiRead: 1400,
      openaiWrite: undefined,
      anthropicRead: 900,
      anthropicWrite: 900,
      anthropicInput: 3000,
    });

    // keypool status: a CACHE HIT column per key, and the pool's ratio on its heading.
    const text = renderStatus(status, { color: false, now: Date.now() });
    expect(text.split("\n\n").map((section) => section.split("\n"))).toEqual([
      [
        "pool openai: 1 keys (1 live) · cache hit 70% of 2k input tokens (24h)",
        "ID  TOKEN     STATE  UNTIL  REQUESTS  ERRORS  IN_FLIGHT  USAGE 24H                   CACHE HIT  REASON",
        "a   sk-…aaaa  live   -      2         0       0          2 req · 100% ok · 2.1k tok  70%        ",
      ],
      [
        "pool anthropic: 1 keys (1 live) · cache hit 30% of 3k input tokens (24h)",
        "ID  TOKEN     STATE  UNTIL  REQUESTS  ERRORS  IN_FLIGHT  USAGE 24H                   CACHE HIT  REASON",
        "a   sk-…aaaa  live   -      3         0       0          3 req · 100% ok · 3.1k tok  30%        ",
      ],
    ]);
    // The same, from the CLI itself.
    const cli = Bun.spawn([process.execPath, "src/main.ts", "status", "--url", gw.kp.url, "--pool", "anthropic"], {
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(await cli.exited).toBe(0);
    expect((await new Response(cli.stdout).text()).split("\n").slice(0, 3)).toEqual(text.split("\n\n")[1]!.split("\n"));
  });

  it("counts a session's usage reported to POST /release, and asks which pool when several are configured", async () => {
    await using gw = await startCachingGateway();
    const lease = await (await gw.kp.fetch("/take?pool=anthropic&session=broker-1")).json();
    const released = await gw.kp.fetch("/release", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        lease: lease.lease,
        ok: true,
        input_tokens: 400,
        output_tokens: 10,
        cached_tokens: 300,
        cache_write_tokens: 100,
        session: "broker-1",
      }),
    });
    expect(released.status).toBe(200);
    const body = await (await gw.kp.fetch("/sessions?pool=anthropic")).json();
    expect(
      body.sessions.map((s: Record<string, unknown>) => [
        s.session,
        s.requests,
        s.cache_hit_ratio,
        s.cache_write_tokens,
      ]),
    ).toEqual([["broker-1", 1, 0.75, 100]]);

    const unnamed = await gw.kp.fetch("/sessions");
    expect(unnamed.status).toBe(400);
    expect((await unnamed.json()).error.message).toContain("say which with ?pool=NAME");
    expect((await gw.kp.fetch("/sessions?pool=nope")).status).toBe(404);
    expect((await gw.kp.fetch("/sessions?pool=openai&limit=0")).status).toBe(400);
  });
});
