/**
 * One process of the soak run:
 *
 *   bun bench/_soak-server.ts upstream <fail-every>          an OpenAI-shaped upstream; every Nth request answers 500
 *   bun bench/_soak-server.ts gateway <upstream-url> [dir]   the real daemon (API + gateway) in front of it
 *
 * Speaks the contract in `_process.ts`: its URL on the first line of stdout (the gateway prints
 * `<gateway-url> <api-url>`), then serves until stopped.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../src/config/load";
import { createDaemon } from "../src/daemon/create-daemon";
import { createLogger } from "../src/log";
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

// The real daemon from a real YAML file. Its log is formatted as in production and then dropped,
// so the soak measures the logging path's memory too without flooding the terminal.
async function startGateway(upstreamUrl: string, stateDir: string): Promise<ServedTarget> {
  const tokens = Array.from(
    { length: POOL_KEYS },
    (_, i) => `k${String(i).padStart(2, "0")},sk-soak-${String(i).padStart(24, "0")}`,
  ).join("\n");
  writeFileSync(join(stateDir, "tokens.txt"), `${tokens}\n`);
  const yaml = [
    "state_file: state.sqlite",
    "server: { addr: 127.0.0.1:0 }",
    "tokens_file: tokens.txt",
    "cooldown_sec: 0",
    // A key that got an injected 500 rests a second, not the default 30 s, so the pool stays busy.
    "backoff: { overloaded: { base_sec: 1, step_sec: 0, max_sec: 1 } }",
    `upstream: { listen: "127.0.0.1:0", base_url: "${upstreamUrl}", cooldown_sec: 0 }`,
    "",
  ].join("\n");
  const configPath = join(stateDir, "keypool.yaml");
  writeFileSync(configPath, yaml);
  const logger = createLogger({ level: "info", format: "json", write: () => {} });
  const daemon = await createDaemon(loadConfig(configPath), { gateway: "all", logger, autoCheck: false });
  await daemon.start();
  const url = Object.values(daemon.gatewayUrls)[0];
  if (!url) throw new Error(`the daemon started no gateway listener; config was:\n${yaml}`);
  return { url: `${url} ${daemon.url}`, stop: () => daemon.stop() };
}

async function main(): Promise<void> {
  const [kind, arg, givenDir] = process.argv.slice(2);
  if ((kind !== "upstream" && kind !== "gateway") || !arg) {
    console.error("usage: bun bench/_soak-server.ts upstream <fail-every> | gateway <upstream-url> [state-dir]");
    process.exit(2);
  }
  const stateDir = childStateDir(givenDir, kind === "gateway", "keypool-soak-");
  const target = kind === "upstream" ? startUpstream(Number(arg)) : await startGateway(arg, stateDir.path);
  await serveUntilStopped(target, stateDir.remove);
}

await main();
