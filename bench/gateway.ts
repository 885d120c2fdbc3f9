/**
 * Gateway benchmark: `bun run bench:gateway [--quick] [--only=throughput|latency] [--cpu-prof-dir=DIR]`
 *
 * The keypool gateway against a bare Bun.serve passthrough (forward + inject Authorization, nothing
 * else), in the same run and against the same fake upstream, each in its own process:
 *
 * 1. Throughput — closed loop, N workers, requests/s; non-streaming and SSE (whole body read). Bare
 *    and gateway alternate round by round and the medians are compared. Target: gateway/bare ≥ 0.9.
 * 2. Added latency — open loop at a fixed 1,000 req/s; p50/p99 through each and the difference.
 *    Target: gateway p99 − bare p99 ≤ 1 ms.
 *
 * Prints a table, then one JSON line with every figure. --cpu-prof-dir profiles the gateway process.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Mode, chatCompletion } from "./_gateway-load";
import { closedLoop, openLoop } from "./_load";
import { type ServerProcess, cpuMsOf, cpuProfileArgs } from "./_process";
import { printBanner, printTable, secondsSince } from "./_report";
import { BenchRun, parseBenchArgs } from "./_run";
import { median, quantile, rate, ratio, round2 } from "./_stats";

const THROUGHPUT_TARGET = 0.9;
const ADDED_P99_TARGET_MS = 1;
const MODES: Mode[] = ["json", "sse"];
const SUBJECTS = ["bare", "gateway"] as const;
type Subject = (typeof SUBJECTS)[number];
const SERVER_SCRIPT = new URL("./_gateway-server.ts", import.meta.url).pathname;

const { quick, only, profileDir } = parseBenchArgs(process.argv.slice(2), { script: "bench/gateway.ts", only: ["throughput", "latency"] });

const plan = quick
  ? {
      throughput: { rounds: 2, workers: 32, warmupMs: 300, durationMs: 1_000 },
      latency: { rounds: 1, ratePerSec: 1_000, warmupMs: 300, durationMs: 1_000 },
    }
  : {
      throughput: { rounds: 3, workers: 32, warmupMs: 500, durationMs: 3_000 },
      latency: { rounds: 2, ratePerSec: 1_000, warmupMs: 500, durationMs: 3_000 },
    };

/**
 * Measures every subject in every round. Odd rounds run bare first, even rounds gateway first, so
 * neither always inherits the other's warm caches or noise.
 */
async function inRounds(rounds: number, measure: (subject: Subject, round: number) => Promise<void>): Promise<void> {
  for (let round = 1; round <= rounds; round++) {
    for (const subject of round % 2 === 1 ? SUBJECTS : [...SUBJECTS].reverse()) await measure(subject, round);
  }
}

interface ThroughputFigures {
  bare: number;
  gateway: number;
  ratio: number;
  rounds: Record<Subject, number[]>;
  /** Median CPU time each server spent per request, in µs (Linux only): steadier than req/s on a busy box. */
  cpuUsPerRequest?: Record<Subject, number>;
  errors: number;
}

async function benchThroughput(servers: Record<Subject, ServerProcess>, mode: Mode): Promise<ThroughputFigures> {
  const { rounds, ...load } = plan.throughput;
  const rps: Record<Subject, number[]> = { bare: [], gateway: [] };
  const cpu: Record<Subject, number[]> = { bare: [], gateway: [] };
  let errors = 0;
  await inRounds(rounds, async (subject, round) => {
    const server = servers[subject];
    const r = await closedLoop(chatCompletion(server.url, mode), { ...load, cpuMs: () => cpuMsOf(server) });
    rps[subject].push(r.perSec);
    if (r.cpuUsPerRequest !== undefined) cpu[subject].push(r.cpuUsPerRequest);
    errors += r.errors;
    const cpuNote = r.cpuUsPerRequest === undefined ? "" : `   ${Math.round(r.cpuUsPerRequest)} µs CPU/request`;
    console.log(`  ${mode.padEnd(4)} round ${round}  ${subject.padEnd(7)} ${rate(r.perSec).padStart(7)} req/s${cpuNote}`);
  });
  const bare = median(rps.bare);
  const gateway = median(rps.gateway);
  const hasCpu = cpu.bare.length === rounds && cpu.gateway.length === rounds;
  return {
    bare: Math.round(bare),
    gateway: Math.round(gateway),
    ratio: ratio(gateway, bare),
    rounds: { bare: rps.bare.map(Math.round), gateway: rps.gateway.map(Math.round) },
    ...(hasCpu && { cpuUsPerRequest: { bare: Math.round(median(cpu.bare)), gateway: Math.round(median(cpu.gateway)) } }),
    errors,
  };
}

interface LatencyFigures {
  p50Ms: Record<Subject | "added", number>;
  p99Ms: Record<Subject | "added", number>;
  samples: Record<Subject, number>;
  /** How late the generator's own sends were (p99, ms): if this is large, so is the noise. */
  sendLagP99Ms: Record<Subject, number>;
  errors: number;
}

/** Samples from every round are pooled per subject, so the p99 rests on a few thousand requests. */
async function benchLatency(urls: Record<Subject, string>, mode: Mode): Promise<LatencyFigures> {
  const { rounds, ...load } = plan.latency;
  const samples: Record<Subject, number[]> = { bare: [], gateway: [] };
  const lags: Record<Subject, number[]> = { bare: [], gateway: [] };
  let errors = 0;
  await inRounds(rounds, async (subject, round) => {
    const r = await openLoop(chatCompletion(urls[subject], mode), load);
    samples[subject].push(...r.latencies);
    lags[subject].push(r.sendLagP99Ms);
    errors += r.errors;
    console.log(
      `  ${mode.padEnd(4)} round ${round}  ${subject.padEnd(7)} p50 ${quantile(r.latencies, 0.5).toFixed(2)} ms  p99 ${quantile(r.latencies, 0.99).toFixed(2)} ms  (${r.latencies.length} requests, send lag p99 ${r.sendLagP99Ms.toFixed(2)} ms)`,
    );
  });
  const at = (subject: Subject, q: number) => quantile(samples[subject].sort((a, b) => a - b), q);
  const p50 = { bare: at("bare", 0.5), gateway: at("gateway", 0.5) };
  const p99 = { bare: at("bare", 0.99), gateway: at("gateway", 0.99) };
  return {
    p50Ms: { bare: round2(p50.bare), gateway: round2(p50.gateway), added: round2(p50.gateway - p50.bare) },
    p99Ms: { bare: round2(p99.bare), gateway: round2(p99.gateway), added: round2(p99.gateway - p99.bare) },
    samples: { bare: samples.bare.length, gateway: samples.gateway.length },
    sendLagP99Ms: { bare: round2(median(lags.bare)), gateway: round2(median(lags.gateway)) },
    errors,
  };
}

function printResults(throughput: Partial<Record<Mode, ThroughputFigures>>, latency: Partial<Record<Mode, LatencyFigures>>): void {
  const verdict = (ok: boolean) => (ok ? "ok" : "MISSED");
  const rows: string[][] = [["measure", "bare", "gateway", "result", "target", ""]];
  for (const [mode, f] of Object.entries(throughput)) {
    rows.push([`${mode} throughput req/s`, rate(f.bare), rate(f.gateway), `${f.ratio.toFixed(2)}×`, `≥ ${THROUGHPUT_TARGET}×`, verdict(f.ratio >= THROUGHPUT_TARGET)]);
    if (f.cpuUsPerRequest) {
      const { bare, gateway } = f.cpuUsPerRequest;
      rows.push([`${mode} server CPU µs/request`, String(bare), String(gateway), `${(gateway / bare).toFixed(1)}×`, "", ""]);
    }
  }
  for (const [mode, f] of Object.entries(latency)) {
    const ms = (n: number) => `${n.toFixed(2)} ms`;
    const plus = (n: number) => `${n >= 0 ? "+" : ""}${n.toFixed(2)} ms`;
    rows.push([`${mode} p50 @ ${rate(plan.latency.ratePerSec)}/s`, ms(f.p50Ms.bare), ms(f.p50Ms.gateway), plus(f.p50Ms.added), "", ""]);
    rows.push([
      `${mode} p99 @ ${rate(plan.latency.ratePerSec)}/s`,
      ms(f.p99Ms.bare),
      ms(f.p99Ms.gateway),
      plus(f.p99Ms.added),
      `≤ +${ADDED_P99_TARGET_MS} ms`,
      verdict(f.p99Ms.added <= ADDED_P99_TARGET_MS),
    ]);
  }
  printTable(rows);
}

/** One request of each kind through each subject before timing anything: a broken setup fails loudly here. */
async function smokeTest(urls: Record<Subject, string>): Promise<void> {
  for (const mode of MODES) {
    for (const subject of SUBJECTS) {
      const r = await closedLoop(chatCompletion(urls[subject], mode), { workers: 1, warmupMs: 0, durationMs: 50 });
      if (r.errors > 0 || r.completed === 0) throw new Error(`${subject} did not answer ${mode} requests correctly (see above)`);
    }
  }
}

async function main(run: BenchRun): Promise<void> {
  printBanner("gateway", quick);
  const started = performance.now();
  const profileArgs = cpuProfileArgs(profileDir);

  const upstream = await run.spawn("upstream", SERVER_SCRIPT, ["upstream"]);
  const stateDir = join(run.tempRoot, "gateway");
  mkdirSync(stateDir);
  const bare = await run.spawn("bare", SERVER_SCRIPT, ["bare", upstream.url]);
  const gateway = await run.spawn("gateway", SERVER_SCRIPT, ["gateway", upstream.url, stateDir], profileArgs);
  const servers: Record<Subject, ServerProcess> = { bare, gateway };
  const urls: Record<Subject, string> = { bare: bare.url, gateway: gateway.url };
  await smokeTest(urls);

  const throughput: Partial<Record<Mode, ThroughputFigures>> = {};
  const latency: Partial<Record<Mode, LatencyFigures>> = {};
  if (only !== "latency") {
    const { rounds, workers, warmupMs, durationMs } = plan.throughput;
    console.log(`Throughput, closed loop — ${workers} workers, ${durationMs / 1000} s after ${warmupMs / 1000} s warmup, ${rounds} rounds each`);
    for (const mode of MODES) throughput[mode] = await benchThroughput(servers, mode);
  }
  if (only !== "throughput") {
    const { rounds, ratePerSec, warmupMs, durationMs } = plan.latency;
    console.log(`\nLatency, open loop — ${rate(ratePerSec)} req/s for ${durationMs / 1000} s after ${warmupMs / 1000} s warmup, ${rounds} rounds each`);
    for (const mode of MODES) latency[mode] = await benchLatency(urls, mode);
  }

  // Stopped gracefully (not killed) so a --cpu-prof profile gets written.
  for (const server of [gateway, bare, upstream]) await run.stop(server);
  printResults(throughput, latency);
  console.log(
    JSON.stringify({
      bench: "gateway",
      quick,
      bun: Bun.version,
      cpus: navigator.hardwareConcurrency,
      seconds: secondsSince(started),
      targets: { throughputRatio: THROUGHPUT_TARGET, addedP99Ms: ADDED_P99_TARGET_MS },
      ...(only !== "latency" && { throughput }),
      ...(only !== "throughput" && { latency }),
    }),
  );
}

using run = new BenchRun("keypool-bench-gateway-");
await main(run);
