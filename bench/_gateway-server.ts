/**
 * One process of the gateway benchmark, so each side of the comparison has a CPU of its own to fight for.
 *
 *   bun bench/_gateway-server.ts upstream
 *   bun bench/_gateway-server.ts bare    <upstream-url>
 *   bun bench/_gateway-server.ts gateway <upstream-url> [state-dir]
 *
 * Speaks the contract in `_process.ts`: its URL on the first line of stdout, then serves until stopped.
 */
import { silentLogger } from "../src/log";
import { startBenchGateway } from "./_gateway-daemon";
import { type ServedTarget, childStateDir, serveUntilStopped } from "./_process";

const SERVER_KINDS = ["upstream", "bare", "gateway"];

/** Enough keys that rotation does real work, few enough that every one is hot in the store. */
const POOL_KEYS = 20;
/** The single token the bare passthrough injects; the gateway injects one of its pool's. */
const BARE_TOKEN = "sk-bench-bare";
const SSE_EVENTS = 10;

// A small OpenAI-shaped answer; with "stream": true, SSE_EVENTS chunk events and [DONE].
function startUpstream(): ServedTarget {
  const completion = JSON.stringify({
    id: "chatcmpl-bench",
    object: "chat.completion",
    created: 1_700_000_000,
    model: "gpt-bench",
    choices: [
      { index: 0, message: { role: "assistant", content: "Hello from the bench upstream." }, finish_reason: "stop" },
    ],
    usage: { prompt_tokens: 9, completion_tokens: 7, total_tokens: 16 },
  });
  const encoder = new TextEncoder();
  const events = Array.from({ length: SSE_EVENTS }, (_, i) =>
    encoder.encode(
      `data: ${JSON.stringify({
        id: "chatcmpl-bench",
        object: "chat.completion.chunk",
        created: 1_700_000_000,
        model: "gpt-bench",
        choices: [{ index: 0, delta: { content: `token${i} ` }, finish_reason: null }],
      })}\n\n`,
    ),
  );
  const done = encoder.encode("data: [DONE]\n\n");

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    routes: {
      "/v1/chat/completions": {
        POST: async (request) => {
          const body = (await request.json()) as { stream?: boolean };
          if (!request.headers.get("authorization")?.startsWith("Bearer sk-bench-")) {
            return Response.json(
              { error: { message: "no bench key", type: "invalid_request_error", code: "invalid_api_key" } },
              { status: 401 },
            );
          }
          if (!body.stream) return new Response(completion, { headers: { "content-type": "application/json" } });
          // One event per pull, so the events leave as separate chunks the way a model's tokens do.
          let next = 0;
          const stream = new ReadableStream<Uint8Array>({
            pull(controller) {
              if (next < events.length) controller.enqueue(events[next++]!);
              else {
                controller.enqueue(done);
                controller.close();
              }
            },
          });
          return new Response(stream, {
            headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
          });
        },
      },
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, stop: () => server.stop(true) };
}

// Forward + inject, nothing else: the floor any reverse proxy written on Bun.serve + fetch starts from.
function startBare(upstreamUrl: string): ServedTarget {
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    async fetch(request) {
      const url = new URL(request.url);
      const headers = new Headers(request.headers);
      headers.set("authorization", `Bearer ${BARE_TOKEN}`);
      const upstream = await fetch(upstreamUrl + url.pathname + url.search, {
        method: request.method,
        headers,
        body: request.body,
      });
      return new Response(upstream.body, upstream);
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, stop: () => server.stop(true) };
}

// The real daemon, configured as `keypool proxy` would run it.
async function startGateway(upstreamUrl: string, stateDir: string): Promise<ServedTarget> {
  const tokens = Array.from({ length: POOL_KEYS }, (_, i) => `k${String(i).padStart(2, "0")},sk-bench-${i}`);
  const settings = ["rotation: lru"];
  const gateway = await startBenchGateway({ upstreamUrl, stateDir, tokens, settings, logger: silentLogger });
  return { url: gateway.gatewayUrl, stop: gateway.stop };
}

async function main(): Promise<void> {
  const [kind, upstreamUrl, givenDir] = process.argv.slice(2);
  if (!SERVER_KINDS.includes(kind ?? "") || (kind !== "upstream" && !upstreamUrl)) {
    console.error(
      "usage: bun bench/_gateway-server.ts upstream | bare <upstream-url> | gateway <upstream-url> [state-dir]",
    );
    process.exit(2);
  }
  const stateDir = childStateDir(givenDir, kind === "gateway", "keypool-bench-gateway-");
  const target =
    kind === "upstream"
      ? startUpstream()
      : kind === "bare"
        ? startBare(upstreamUrl!)
        : await startGateway(upstreamUrl!, stateDir.path);
  await serveUntilStopped(target, stateDir.remove);
}

await main();
