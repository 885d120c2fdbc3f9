/**
 * Soak: `bun run bench:soak -- --minutes N [--rate R]`
 *
 * Steady gateway load (R req/s, default 300, half plain JSON, half SSE) against the real daemon in
 * its own process, in front of an upstream that fails 1% of requests with a 500 — which the gateway
 * retries on another key while the failed key rests. /metrics and /status are scraped every 10 s.
 * Prints the daemon's RSS every minute. Target: RSS growth ≤ 10% between minute 2 (after warm-up)
 * and minute N. Exit 0 when the target is met and no request failed, 1 otherwise, 2 on bad arguments.
 */
import { rssMb } from "./_process";
import { parseArgs } from "node:util";
import { type Mode, chatCompletion } from "./_gateway-load";
import { printBanner, printTable } from "./_report";
import { BenchRun } from "./_run";

const GROWTH_TARGET = 0.1;
const FAIL_EVERY = 100; // 1% of upstream requests
const SCRAPE_EVERY_MS = 10_000;
const MAX_IN_FLIGHT = 2_000;
const SERVER_SCRIPT = new URL("./_soak-server.ts", import.meta.url).pathname;

function parse(): { minutes: number; rate: number } {
  const usage =
    "usage: bun bench/soak.ts [--minutes N] [--rate REQ_PER_SEC]   (N ≥ 2: growth is measured from minute 2)";
  try {
    const { values } = parseArgs({
      args: process.argv.slice(2),
      strict: true,
      options: { minutes: { type: "string" }, rate: { type: "string" } },
    });
    const minutes = Number(values.minutes ?? 10);
    const rate = Number(values.rate ?? 300);
    if (!Number.isInteger(minutes) || minutes < 2 || !(rate > 0)) throw new Error("bad value");
    return { minutes, rate };
  } catch {
    console.error(`unknown or bad arguments: ${process.argv.slice(2).join(" ")}\n${usage}`);
    process.exit(2);
  }
}

interface Minute {
  minute: number;
  sent: number;
  ok: number;
  failed: number;
  rssMb: number;
}

const { minutes, rate } = parse();
printBanner("soak", false);
console.log(`${minutes} min at ${rate} req/s (half SSE), 1 upstream request in ${FAIL_EVERY} answers 500\n`);

using run = new BenchRun("keypool-soak-");
const upstream = await run.spawn("upstream", SERVER_SCRIPT, ["upstream", String(FAIL_EVERY)]);
const gateway = await run.spawn("gateway", SERVER_SCRIPT, ["gateway", upstream.url, run.tempRoot]);
const [gatewayUrl, apiUrl] = gateway.url.split(" ") as [string, string];
const pid = gateway.process.pid;
const loads: Record<Mode, ReturnType<typeof chatCompletion>> = {
  json: chatCompletion(gatewayUrl, "json"),
  sse: chatCompletion(gatewayUrl, "sse"),
};

const totals = { sent: 0, ok: 0, failed: 0, skipped: 0, firstFailure: undefined as string | undefined };
let window = { sent: 0, ok: 0, failed: 0 };
let inFlight = 0;
const rows: Minute[] = [];
const started = performance.now();
const endAt = started + minutes * 60_000;
let nextScrape = started + SCRAPE_EVERY_MS;
let nextMinute = started + 60_000;

const send = (index: number) => {
  inFlight++;
  totals.sent++;
  window.sent++;
  loads[index % 2 === 0 ? "json" : "sse"]
    .send()
    .then(
      () => {
        totals.ok++;
        window.ok++;
      },
      (error: Error) => {
        totals.failed++;
        window.failed++;
        totals.firstFailure ??= error.message;
      },
    )
    .finally(() => inFlight--);
};

const scrape = async () => {
  for (const path of ["/metrics", "/status"])
    await fetch(`${apiUrl}${path}`)
      .then((r) => r.arrayBuffer())
      .catch(() => {});
};

function endMinute(): void {
  const row = { minute: rows.length + 1, ...window, rssMb: rssMb(pid) };
  rows.push(row);
  console.log(
    `  minute ${String(row.minute).padStart(2)}  ${row.sent} sent  ${row.ok} ok  ${row.failed} failed  RSS ${row.rssMb.toFixed(1)} MB`,
  );
  window = { sent: 0, ok: 0, failed: 0 };
}

let index = 0;
while (performance.now() < endAt) {
  const now = performance.now();
  // Everything due by now leaves now (open loop: a slow answer never slows the offered load).
  const due = Math.floor(((now - started) / 1000) * rate);
  for (; index < due; index++) {
    if (inFlight >= MAX_IN_FLIGHT) totals.skipped++;
    else send(index);
  }
  if (now >= nextScrape) {
    nextScrape += SCRAPE_EVERY_MS;
    void scrape();
  }
  if (now >= nextMinute) {
    endMinute();
    nextMinute += 60_000;
  }
  await Bun.sleep(5);
}
const settleUntil = performance.now() + 10_000;
while (inFlight > 0 && performance.now() < settleUntil) await Bun.sleep(20);
// The last minute ends with the load, before the loop would have seen its boundary.
if (rows.length < minutes) endMinute();
await run.stop(gateway);
await run.stop(upstream);

const atTwo = rows[1]?.rssMb ?? Number.NaN;
const atEnd = rows.at(-1)?.rssMb ?? Number.NaN;
const growth = (atEnd - atTwo) / atTwo;
const met = growth <= GROWTH_TARGET && totals.failed === 0 && totals.skipped === 0;
printTable([
  ["figure", "value", "target", "verdict"],
  [
    `RSS growth minute 2 → ${rows.length}`,
    `${(growth * 100).toFixed(1)}% (${atTwo.toFixed(1)} → ${atEnd.toFixed(1)} MB)`,
    `≤ ${GROWTH_TARGET * 100}%`,
    growth <= GROWTH_TARGET ? "ok" : "MISSED",
  ],
  ["failed requests", `${totals.failed} of ${totals.sent}`, "0", totals.failed === 0 ? "ok" : "MISSED"],
  ["sends skipped (2,000 in flight)", String(totals.skipped), "0", totals.skipped === 0 ? "ok" : "MISSED"],
]);
if (totals.firstFailure) console.error(`first failure: ${totals.firstFailure}`);
console.log(
  JSON.stringify({
    minutes,
    rate,
    rssMb: rows.map((r) => Math.round(r.rssMb * 10) / 10),
    growth: Math.round(growth * 1000) / 1000,
    ...totals,
  }),
);
process.exitCode = met ? 0 : 1;
