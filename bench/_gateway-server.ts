/**
 * One process of the gateway benchmark, so each side of the comparison has a CPU of its own to fight for.
 *
 *   bun bench/_gateway-server.ts upstream
 *   bun bench/_gateway-server.ts bare    <upstream-url>
 *   bun bench/_gateway-server.ts gateway <upstream-url> [state-dir]
 *   bun bench/_gateway-server.ts gateway-stub <upstream-url> [state-dir]
 *
 * `gateway-stub` is for `--breakdown`: the daemon's gateway listener, wired as the daemon wires it
 * (metrics, take queue, routes from the same YAML), over a store that does nothing, so what it costs
 * beyond bare is the gateway code's own cost, apart from the store's.
 *
 * Speaks the contract in `_process.ts`: its URL on the first line of stdout, then serves until stopped.
 */
import { TakeQueue } from "../src/broker/take-queue";
import { loadConfig } from "../src/config/load";
import { restartWithAllocatorSettings } from "../src/daemon/allocator";
import { startGatewayListeners } from "../src/daemon/gateway-listeners";
import { createMetrics } from "../src/metrics/metrics";
import { systemClock } from "../src/pool/clock";
import type { Lease, PoolStore, ReleaseResult } from "../src/store/types";
import { droppedJsonLogger, startBenchGateway, writeBenchGatewayConfig } from "./_gateway-daemon";
import { benchTokenLines } from "./_gateway-tokens";
import { type ServedTarget, childStateDir, serveUntilStopped } from "./_process";

const SERVER_KINDS = ["upstream", "bare", "gateway", "gateway-stub"];

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
  const tokens = benchTokenLines();
  const settings = ["rotation: lru"];
  const gateway = await startBenchGateway({ upstreamUrl, stateDir, tokens, settings });
  return { url: gateway.gatewayUrl, stop: gateway.stop };
}

// Only what the gateway calls on its hot path; leases rotate over the pool's keys as an LRU pick would.
function stubStore(tokens: string[]): PoolStore {
  const keys = tokens.map((line) => line.split(","));
  let leases = 0;
  const stub = {
    take: async (pool: string): Promise<Lease> => {
      const [id, token] = keys[leases % keys.length]!;
      const now = Date.now();
      return {
        lease: `ls_${(++leases).toString(16)}`,
        pool,
        id: id!,
        token: token!,
        takenAt: now,
        expiresAt: now + 300_000,
      };
    },
    release: async (): Promise<ReleaseResult> => ({ pool: "default", id: keys[0]![0]!, state: "live", reason: null }),
  };
  return stub as unknown as PoolStore;
}

function startGatewayOverStub(upstreamUrl: string, stateDir: string): ServedTarget {
  const tokens = benchTokenLines();
  const config = loadConfig(writeBenchGatewayConfig({ upstreamUrl, stateDir, tokens, settings: ["rotation: lru"] }));
  const store = stubStore(tokens);
  const clock = systemClock;
  const listeners = startGatewayListeners(config, "all", {
    store,
    clock,
    logger: droppedJsonLogger(),
    metrics: createMetrics({ store, clock }),
    keys: new TakeQueue({ store, clock }),
  });
  return { url: Object.values(listeners.urls)[0]!, stop: () => listeners.stop() };
}

async function main(): Promise<void> {
  const [kind, upstreamUrl, givenDir] = process.argv.slice(2);
  if (!SERVER_KINDS.includes(kind ?? "") || (kind !== "upstream" && !upstreamUrl)) {
    console.error(
      "usage: bun bench/_gateway-server.ts upstream | bare <upstream-url> | gateway|gateway-stub <upstream-url> [state-dir]",
    );
    process.exit(2);
  }
  // keypool's subjects run as `keypool proxy` does; bare and the upstream keep Bun's defaults.
  if (kind!.startsWith("gateway")) restartWithAllocatorSettings(process.argv.slice(2));
  const stateDir = childStateDir(givenDir, kind!.startsWith("gateway"), "keypool-bench-gateway-");
  const target =
    kind === "upstream"
      ? startUpstream()
      : kind === "bare"
        ? startBare(upstreamUrl!)
        : kind === "gateway-stub"
          ? startGatewayOverStub(upstreamUrl!, stateDir.path)
          : await startGateway(upstreamUrl!, stateDir.path);
  await serveUntilStopped(target, stateDir.remove);
}

await main();
