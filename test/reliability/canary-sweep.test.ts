/**
 * Scenario 15: a canary token in every pool, driven through the failures of scenarios 1–4 and the
 * hostile input of scenario 10 on a real `keypool serve`, and then looked for everywhere an
 * operator or a client can see anything: the daemon's whole log, every gateway answer and error
 * body, /status, /metrics, /events, /sessions, the admin routes, the dashboard (/ui, /ui/data) and
 * the CLI's output. Only the places that exist to hand a token out — a /take (or the poolctl
 * GET /keys/:pool) body and the upstream request — may hold it. Every other reliability test also
 * keeps a canary in its pool and checks what it saw (see _canary.ts).
 */
import { describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import YAML from "yaml";
import { startFakeUpstream } from "../helpers/fake-upstream";
import { controlledStream, openaiChunks, readFirstChunk, type ControlledStream } from "../helpers/gateway-streams";
import { startServeWithGateway } from "../helpers/lifecycle";
import { runKeypool } from "../helpers/run-keypool";
import { tempDir } from "../helpers/temp-dir";
import { canary, leaksOf, tokensLines } from "./_canary";

const HEADER_CANARY = canary("header");
const QUERY_CANARY = canary("query");
const CANARIES = [HEADER_CANARY, QUERY_CANARY];

/** What one upstream path does; every pool's upstream is this one fake. */
let cutting: ControlledStream | undefined;
function upstream(req: Request): Response | Promise<Response> {
  const path = new URL(req.url).pathname;
  if (path.endsWith("/limited"))
    return Response.json(
      { error: { message: "Rate limit reached" } },
      { status: 429, headers: { "retry-after": "0" } },
    );
  if (path.endsWith("/revoked"))
    return Response.json({ error: { message: "Incorrect API key provided" } }, { status: 401 });
  if (path.endsWith("/broken"))
    return Response.json({ error: { message: "The server had an error" } }, { status: 500 });
  if (path.endsWith("/silent")) return new Promise(() => {});
  if (path.endsWith("/cut")) return cutting!.respond(req);
  // A provider that echoes the key it was sent in an error message (some do): keypool must not pass it on.
  if (path.endsWith("/echo"))
    return Response.json(
      {
        error: {
          message: `invalid key ${req.headers.get("authorization") ?? new URL(req.url).searchParams.get("key")}`,
        },
      },
      { status: 400 },
    );
  return Response.json({
    choices: [{ message: { content: "hi" } }],
    usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
  });
}

/** Everything a client sees of an answer: status line, headers, body (or how it broke). */
async function seen(pending: Promise<Response>): Promise<string> {
  const response = await pending;
  const body = await response.text().catch((error: Error) => `<broke: ${error.message}>`);
  return `${response.status}\n${JSON.stringify([...response.headers])}\n${body}`;
}

describe("scenario 15: canary tokens under every scenario", () => {
  it("appear in no log line, status, metric, event, error body, dashboard page or CLI output", async () => {
    await using fake = await startFakeUpstream(upstream);
    using dir = tempDir();
    writeFileSync(dir.file("h.txt"), `h1,sk-test-hhhhhhhhhhhhhhhhhhhhhhhh\n${tokensLines([HEADER_CANARY])}`);
    writeFileSync(dir.file("q.txt"), `q1,sk-test-qqqqqqqqqqqqqqqqqqqqqqqq\n${tokensLines([QUERY_CANARY])}`);
    const gateway = {
      enabled: true,
      listen: "127.0.0.1:0",
      base_url: fake.url,
      cooldown_sec: 0,
      timeout_sec: 0.3,
      max_body_bytes: 256,
    };
    writeFileSync(
      dir.file("keypool.yaml"),
      YAML.stringify({
        state_file: "state.db",
        cooldown_sec: 0,
        server: { addr: "127.0.0.1:0" },
        metrics: { addr: "127.0.0.1:0" },
        pools: {
          h: {
            tokens_file: "h.txt",
            upstream: gateway,
            check: { url: `${fake.url}/v1/models`, headers: { authorization: "Bearer {token}" } },
          },
          q: {
            tokens_file: "q.txt",
            upstream: { ...gateway, auth_query: "key" },
            check: { url: `${fake.url}/v1/models?key={token}` },
          },
        },
      }),
    );
    await using daemon = await startServeWithGateway(dir.file("keypool.yaml"));
    const gw = daemon.gatewayUrl;
    const api = daemon.url;
    const answers: string[] = [];

    // Scenarios 1–4 and 10, on both pools, through the gateway.
    for (const pool of ["h", "q"]) {
      const base = `${gw}/${pool}/v1`;
      answers.push(
        await seen(
          fetch(`${base}/chat/completions`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: '{"model":"m"}',
          }),
        ),
      );
      for (const path of ["echo", "echo", "limited", "broken", "silent", "revoked"])
        answers.push(await seen(fetch(`${base}/${path}?key=client-sent`, { method: "POST", body: "{}" })));
      cutting = controlledStream(openaiChunks(["a", "b", "c"]));
      const cut = await fetch(`${base}/cut`);
      const { text, reader } = await readFirstChunk(cut.body!);
      cutting.fail();
      const end = await reader.read().then(
        () => "ended",
        (error: Error) => `broke: ${error.message}`,
      );
      answers.push(`${cut.status}\n${JSON.stringify([...cut.headers])}\n${text}\n${end}`);
      answers.push(await seen(fetch(`${base}/chat/completions`, { method: "POST", body: "x".repeat(257) })));
      answers.push(
        await seen(
          fetch(`${base}/chat/completions`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: "[".repeat(5000),
          }),
        ),
      );
    }
    answers.push(await seen(fetch(`${gw}/nowhere/v1/x`)));
    // Make sure the canaries really were used, or this proves nothing.
    const upstreamSaw = JSON.stringify(fake.calls);
    expect(CANARIES.every((c) => upstreamSaw.includes(c.token))).toBe(true);

    // The broker: takes hand tokens out by design; their bodies are not searched. Everything else is.
    for (let i = 0; i < 4; i++) {
      const taken = (await (await fetch(`${api}/take?pool=${i % 2 ? "q" : "h"}`)).json()) as { lease?: string };
      if (taken.lease)
        answers.push(
          await seen(
            fetch(`${api}/release`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({ lease: taken.lease, ok: false, status: 429, error_body: "slow down" }),
            }),
          ),
        );
    }
    answers.push(
      await seen(
        fetch(`${api}/release`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: '{"lease":"ls_nope","ok":true}',
        }),
      ),
    );
    answers.push(
      await seen(
        fetch(`${api}/release`, { method: "POST", headers: { "content-type": "application/json" }, body: "{" }),
      ),
    );
    answers.push(
      await seen(
        fetch(`${api}/pools/h/keys`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ token: HEADER_CANARY.token }),
        }),
      ),
    );
    answers.push(await seen(fetch(`${api}/pools/h/keys/${HEADER_CANARY.id}`, { method: "DELETE" })));
    answers.push(
      await seen(
        fetch(`${api}/health/h`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ key: `${HEADER_CANARY.token}x`, status: 401 }),
        }),
      ),
    );

    const metricsUrl = JSON.parse(await daemon.waitForLog(/"msg":"metrics listening"|metrics/)).url as
      | string
      | undefined;
    const pages = [
      "/status",
      "/status?pool=h",
      "/events",
      "/events?pool=q&limit=1000",
      "/sessions?pool=h",
      "/metrics",
      "/ui",
      "/ui/data",
      "/pools",
      "/pools/h/keys",
      "/pools/q/keys",
      "/pools/h/usage?window=all",
      "/openapi.json",
    ];
    for (const page of pages) answers.push(await seen(fetch(`${api}${page}`)));
    if (metricsUrl) answers.push(await seen(fetch(metricsUrl)));

    const cli = (args: string[]) => runKeypool([...args, "-c", dir.file("keypool.yaml"), "--url", api]);
    const outputs = await Promise.all([
      cli(["status"]),
      cli(["status", "--json"]),
      cli(["keys", "list"]),
      cli(["take", "--pool", "h"]),
      cli(["alerts", "list"]).catch(() => undefined),
    ]);
    const offline = await Promise.all([
      runKeypool(["config", "validate", "-c", dir.file("keypool.yaml")]),
      runKeypool(["check", "-c", dir.file("keypool.yaml")]),
    ]);
    for (const run of [...outputs, ...offline]) if (run) answers.push(`${run.code}\n${run.stdout}\n${run.stderr}`);
    expect(offline.map((r) => r.code)).toEqual([0, 0]);

    daemon.proc.kill("SIGTERM");
    expect(await daemon.proc.exited).toBe(0);
    expect(leaksOf(CANARIES, [daemon.log(), daemon.stdout(), ...answers])).toEqual([]);
  }, 30_000);
});
