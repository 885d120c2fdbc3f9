/**
 * One process of the hostile-peers run:
 *
 *   bun bench/_hostile-server.ts upstream <error-mb>          an upstream whose /error/<status> answers with <error-mb> MB
 *   bun bench/_hostile-server.ts gateway <upstream-url> [dir]  the real daemon (API + gateway) in front of it
 *
 * Speaks the contract in `_process.ts`: its URL on the first line of stdout (the gateway prints
 * `<gateway-url> <api-url>`), then serves until stopped. The upstream answers GET /produced with how
 * many bytes of error bodies it has made so far: what the gateway pulled before it cut them off.
 */
import { restartWithAllocatorSettings } from "../src/daemon/allocator";
import { startBenchGateway } from "./_gateway-daemon";
import { type ServedTarget, childStateDir, serveUntilStopped } from "./_process";

const CHUNK = new Uint8Array(64 * 1024).fill("e".charCodeAt(0));

function startUpstream(errorMb: number): ServedTarget {
  const total = errorMb * 1024 * 1024;
  let produced = 0;
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    // A body the gateway stops reading sits unsent; the upstream must not reap it for that.
    idleTimeout: 0,
    fetch(request) {
      const path = new URL(request.url).pathname;
      if (path === "/produced") return Response.json({ produced });
      const status = Number(/^\/error\/(\d{3})$/.exec(path)?.[1] ?? 0);
      if (!status) return Response.json({ data: [] });
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= total) return controller.close();
          sent += CHUNK.length;
          produced += CHUNK.length;
          controller.enqueue(CHUNK);
        },
      });
      return new Response(body, { status, headers: { "content-type": "application/json" } });
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, stop: () => server.stop(true) };
}

async function startGateway(upstreamUrl: string, stateDir: string): Promise<ServedTarget> {
  // Enough keys that those resting after a 500 leave others for the next request.
  const tokens = Array.from({ length: 8 }, (_, i) => `k${i},sk-hostile-${String(i).padStart(24, "0")}`);
  // A key that got a 500 rests briefly, so the next round finds it again.
  const settings = ["backoff: { overloaded: { base_sec: 0.1, step_sec: 0, max_sec: 0.1 } }"];
  const gateway = await startBenchGateway({ upstreamUrl, stateDir, tokens, settings });
  return { url: `${gateway.gatewayUrl} ${gateway.apiUrl}`, stop: gateway.stop };
}

async function main(): Promise<void> {
  const [kind, arg, givenDir] = process.argv.slice(2);
  if ((kind !== "upstream" && kind !== "gateway") || !arg) {
    console.error("usage: bun bench/_hostile-server.ts upstream <error-mb> | gateway <upstream-url> [state-dir]");
    process.exit(2);
  }
  // The gateway runs as `keypool proxy` runs (see src/daemon/allocator.ts); the upstream keeps Bun's defaults.
  if (kind === "gateway") restartWithAllocatorSettings(process.argv.slice(2));
  const stateDir = childStateDir(givenDir, kind === "gateway", "keypool-hostile-");
  const target = kind === "upstream" ? startUpstream(Number(arg)) : await startGateway(arg, stateDir.path);
  await serveUntilStopped(target, stateDir.remove);
}

await main();
