/**
 * Hostile peers: `bun run bench:hostile [-- --clients N] [--error-mb M]`
 *
 * The real daemon in its own process, in front of an upstream whose error bodies are M MB (default
 * 300), while N clients (default 500) hold connections open doing nothing: half never send a request,
 * half sent one and keep the connection alive. Error answers are requested through the gateway, one
 * passed through (400) and one retried on the other key (500), each a few times over. Prints the
 * daemon's RSS idle and its peak under that load, how much of the error bodies the upstream got to
 * send, and whether /health on the API kept answering. Target: peak RSS under 200 MB.
 * Exit 0 when every target is met, 1 otherwise, 2 on bad arguments.
 */
import { rssMb } from "./_process";
import { parseArgs } from "node:util";
import type { Socket } from "bun";
import { printBanner, printTable } from "./_report";
import { BenchRun } from "./_run";

const RSS_TARGET_MB = 200;
const ROUNDS = 3;
const SAMPLE_EVERY_MS = 25;
const SERVER_SCRIPT = new URL("./_hostile-server.ts", import.meta.url).pathname;

function parse(): { clients: number; errorMb: number } {
  const usage = "usage: bun bench/hostile.ts [--clients N] [--error-mb M]";
  try {
    const { values } = parseArgs({
      args: process.argv.slice(2),
      strict: true,
      options: { clients: { type: "string" }, "error-mb": { type: "string" } },
    });
    const clients = Number(values.clients ?? 500);
    const errorMb = Number(values["error-mb"] ?? 300);
    if (!Number.isInteger(clients) || clients < 0 || !Number.isInteger(errorMb) || errorMb < 1)
      throw new Error("bad value");
    return { clients, errorMb };
  } catch {
    console.error(`unknown or bad arguments: ${process.argv.slice(2).join(" ")}\n${usage}`);
    process.exit(2);
  }
}

/** Samples a process's RSS until stopped; the peak is what the load cost. */
function rssSampler(pid: number) {
  let peak = rssMb(pid);
  const timer = setInterval(() => {
    peak = Math.max(peak, rssMb(pid));
  }, SAMPLE_EVERY_MS);
  return {
    stop(): number {
      clearInterval(timer);
      return Math.max(peak, rssMb(pid));
    },
  };
}

/** A client that connects and then does nothing more: after one keep-alive request, or without sending a byte. */
async function idleClient(url: string, sendOne: boolean): Promise<Socket<undefined>> {
  const { hostname, port } = new URL(url);
  const answered = Promise.withResolvers<void>();
  const socket = await Bun.connect({
    hostname,
    port: Number(port),
    socket: { data: () => answered.resolve(), close: () => answered.resolve(), error: () => answered.resolve() },
  });
  if (!sendOne) return socket;
  socket.write(`GET /v1/models HTTP/1.1\r\nhost: ${hostname}\r\n\r\n`);
  await answered.promise;
  return socket;
}

async function healthAnswers(apiUrl: string): Promise<boolean> {
  try {
    return (await fetch(`${apiUrl}/health`, { signal: AbortSignal.timeout(5_000) })).status === 200;
  } catch {
    return false;
  }
}

const { clients, errorMb } = parse();
printBanner("hostile", false);
console.log(
  `${clients} idle clients; error bodies of ${errorMb} MB (400 passed through, 500 retried), ${ROUNDS} rounds\n`,
);

using run = new BenchRun("keypool-hostile-");
const upstream = await run.spawn("upstream", SERVER_SCRIPT, ["upstream", String(errorMb)]);
const gateway = await run.spawn("gateway", SERVER_SCRIPT, ["gateway", upstream.url, run.tempRoot]);
const [gatewayUrl, apiUrl] = gateway.url.split(" ") as [string, string];
const pid = gateway.process.pid;

// Warm up (JIT, first allocations), then let the daemon settle before the baseline.
for (let i = 0; i < 50; i++) await fetch(`${gatewayUrl}/v1/models`).then((r) => r.arrayBuffer());
for (let i = 0; i < 20; i++) await fetch(`${apiUrl}/health`).then((r) => r.arrayBuffer());
await Bun.sleep(1_000);
const idleRss = rssMb(pid);
console.log(`  idle: RSS ${idleRss.toFixed(1)} MB`);

const sampler = rssSampler(pid);
const sockets = await Promise.all(Array.from({ length: clients }, (_, i) => idleClient(gatewayUrl, i % 2 === 0)));
const healthWithIdle = await healthAnswers(apiUrl);
console.log(`  ${sockets.length} idle clients connected; /health ${healthWithIdle ? "answers" : "does NOT answer"}`);

const received: number[] = [];
const statuses = new Set<number>();
for (let round = 0; round < ROUNDS; round++) {
  for (const status of [400, 500]) {
    const response = await fetch(`${gatewayUrl}/error/${status}`);
    statuses.add(response.status);
    received.push((await response.arrayBuffer()).byteLength);
  }
}
const healthAfter = await healthAnswers(apiUrl);
const peakRss = sampler.stop();
const produced = ((await (await fetch(`${upstream.url}/produced`)).json()) as { produced: number }).produced;
console.log(
  `  error answers: statuses ${[...statuses].join(", ")}; client got ${Math.max(...received)} bytes at most; /health ${healthAfter ? "answers" : "does NOT answer"}`,
);
for (const socket of sockets) socket.terminate();
await run.stop(gateway);
await run.stop(upstream);

// A 500 is tried on both keys: two upstream bodies per request.
const offeredMb = ROUNDS * 3 * errorMb;
const producedMb = produced / 1024 / 1024;
const met = peakRss < RSS_TARGET_MB && healthWithIdle && healthAfter;
printTable([
  ["figure", "value", "target", "verdict"],
  ["daemon RSS idle", `${idleRss.toFixed(1)} MB`, "", ""],
  [
    "daemon RSS peak under hostile load",
    `${peakRss.toFixed(1)} MB (+${(peakRss - idleRss).toFixed(1)})`,
    `< ${RSS_TARGET_MB} MB`,
    peakRss < RSS_TARGET_MB ? "ok" : "MISSED",
  ],
  ["error-body bytes the upstream got to send", `${producedMb.toFixed(1)} of ${offeredMb} MB`, "", ""],
  [
    `/health with ${clients} idle clients, and after`,
    `${healthWithIdle ? "200" : "no answer"}, ${healthAfter ? "200" : "no answer"}`,
    "200",
    healthWithIdle && healthAfter ? "ok" : "MISSED",
  ],
]);
console.log(
  JSON.stringify({
    clients,
    errorMb,
    idleRssMb: Math.round(idleRss * 10) / 10,
    peakRssMb: Math.round(peakRss * 10) / 10,
    producedMb: Math.round(producedMb),
  }),
);
process.exitCode = met ? 0 : 1;
