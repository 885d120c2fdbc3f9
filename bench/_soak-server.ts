/**
 * One process of the soak run:
 *
 *   bun bench/_soak-server.ts upstream <fail-every>          an OpenAI-shaped upstream; every Nth request answers 500
 *   bun bench/_soak-server.ts gateway <upstream-url> [dir]   the real daemon (API + gateway) in front of it
 *
 * Speaks the contract in `_process.ts`: its URL on the first line of stdout (the gateway prints
 * `<gateway-url> <api-url>`), then serves until stopped.
 */
import { restartWithAllocatorSettings } from "../src/daemon/allocator";
import { startBenchGateway } from "./_gateway-daemon";
import { type ServedTarget, childStateDir, serveUntilStopped } from "./_process";

/** Enough keys that the ones resting after an injected failure leave plenty to serve. */
const POOL_KEYS = 50;
const SSE_EVENTS = 10;

function startUpstream(failEvery: number): ServedTarget {
  const completion = JSON.stringify({
    id: "chatcmpl-soak",
    object: "chat.completion",
    created: 1_700_000_000,
    model: "gpt-soak",
    choices: [
      { index: 0, message: { role: "assistant", content: "Hello from the soak upstream." }, finish_reason: "stop" },
    ],
    usage: { prompt_tokens: 9, completion_tokens: 7, total_tokens: 16 },
  });
  const encoder = new TextEncoder();
  const event = (i: number) =>
    encoder.encode(
      `data: ${JSON.stringify({ id: "chatcmpl-soak", object: "chat.completion.chunk", model: "gpt-soak", choices: [{ index: 0, delta: { content: `t${i} ` } }] })}\n\n`,
    );
  let served = 0;
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      const body = (await request.json().catch(() => ({}))) as { stream?: boolean };
      if (++served % failEvery === 0) {
        return Response.json(
          { error: { message: "The server had an error while processing your request.", type: "server_error" } },
          { status: 500 },
        );
      }
      if (!body.stream) return new Response(completion, { headers: { "content-type": "application/json" } });
      let next = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (next < SSE_EVENTS) controller.enqueue(event(next++));
          else {
            controller.enqueue(encoder.encode("data: [DONE]\n\n"));
            controller.close();
          }
        },
      });
      return new Response(stream, { headers: { "content-type": "text/event-stream" } });
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, stop: () => server.stop(true) };
}

async function startGateway(upstreamUrl: string, stateDir: string): Promise<ServedTarget> {
  const tokens = Array.from(
    { length: POOL_KEYS },
    (_, i) => `k${String(i).padStart(2, "0")},sk-soak-${String(i).padStart(24, "0")}`,
  );
  // A key that got an injected 500 rests a second, not the default 30 s, so the pool stays busy.
  const settings = ["backoff: { overloaded: { base_sec: 1, step_sec: 0, max_sec: 1 } }"];
  const gateway = await startBenchGateway({ upstreamUrl, stateDir, tokens, settings });
  return { url: `${gateway.gatewayUrl} ${gateway.apiUrl}`, stop: gateway.stop };
}

async function main(): Promise<void> {
  const [kind, arg, givenDir] = process.argv.slice(2);
  if ((kind !== "upstream" && kind !== "gateway") || !arg) {
    console.error("usage: bun bench/_soak-server.ts upstream <fail-every> | gateway <upstream-url> [state-dir]");
    process.exit(2);
  }
  // The gateway runs as `keypool proxy` runs (see src/daemon/allocator.ts); the upstream keeps Bun's defaults.
  if (kind === "gateway") restartWithAllocatorSettings(process.argv.slice(2));
  const stateDir = childStateDir(givenDir, kind === "gateway", "keypool-soak-");
  const target = kind === "upstream" ? startUpstream(Number(arg)) : await startGateway(arg, stateDir.path);
  await serveUntilStopped(target, stateDir.remove);
}

await main();
