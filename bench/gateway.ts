/**
 * Gateway benchmark: `bun run bench:gateway [--quick] [--only=throughput|latency|checkpoints] [--cpu-prof-dir=DIR]`
 *
 * The keypool gateway against a bare Bun.serve passthrough (forward + inject Authorization, nothing
 * else) and against poolctl's proxy (the Go gateway keypool replaces, from ../shared/peers/, skipped when
 * absent), in the same run and against the same fake upstream, each in its own process:
 *
 * 1. Throughput — closed loop, N workers, requests/s; non-streaming and SSE (whole body read). Bare
 *    and gateway alternate round by round and the medians are compared. Targets: gateway/bare ≥ 0.9,
 *    gateway/poolctl ≥ 1.0.
 * 2. Added latency — open loop at a fixed 1,000 req/s; p50/p99 through each and the difference.
 *    Target: gateway p99 − bare p99 ≤ 1 ms.
 * 3. Checkpoints — the same at 1,000 req/s through a gateway whose pool has 100,000 keys, so its state
 *    file's log fills and checkpoints during the measurement (see _gateway-checkpoints.ts). Target: ≤ 3 ms.
 *
 * Prints a table, then one JSON line with every figure. --cpu-prof-dir profiles the gateway process.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { benchUnderCheckpoints, checkpointRows } from "./_gateway-checkpoints";
import { type Mode, chatCompletion } from "./_gateway-load";
import { closedLoop, openLoop } from "./_load";
import { poolctlAvailable, startPoolctl } from "./_poolctl";
import { type ServerProcess, cpuMsOf, cpuProfileArgs } from "./_process";
import { printBanner, printTable, secondsSince } from "./_report";
import { BenchRun, parseBenchArgs } from "./_run";
import { median, quantile, rate, ratio, round2 } from "./_stats";

const THROUGHPUT_TARGET = 0.9;
const POOLCTL_TARGET = 1.0;
const ADDED_P99_TARGET_MS = 1;
const MODES: Mode[] = ["json", "sse"];
type Subject = "bare" | "gateway" | "poolctl";
const SUBJECTS: Subject[] = ["bare", "gateway"];
/** The same number of keys as bench/_gateway-server.ts gives the gateway. */
const POOL_KEYS = 20;
const SERVER_SCRIPT = new URL("./_gateway-server.ts", import.meta.url).pathname;

const { quick, only, profileDir } = parseBenchArgs(process.argv.slice(2), {
  script: "bench/gateway.ts",
  only: ["throughput", "latency", "checkpoints"],
});

const plan = quick
  ? {
      throughput: { rounds: 2, workers: 32, warmupMs: 300, durationMs: 1_000 },
      latency: { rounds: 1, ratePerSec: 1_000, warmupMs: 300, durationMs: 1_000 },
      checkpoints: { rounds: 1, ratePerSec: 1_000, warmupMs: 300, durationMs: 2_000 },
    }
  : {
      throughput: { rounds: 3, workers: 32, warmupMs: 500, durationMs: 3_000 },
      latency: { rounds: 2, ratePerSec: 1_000, warmupMs: 500, durationMs: 3_000 },
      checkpoints: { rounds: 2, ratePerSec: 1_000, warmupMs: 500, durationMs: 5_000 },
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
  /** poolctl's proxy req/s and the gateway's ratio to it, when its binary is present. */
  poolctl?: { reqPerSec: number; ratio: number };
  rounds: Partial<Record<Subject, number[]>>;
  /** Median CPU time each server spent per request, in µs (Linux only): steadier than req/s on a busy box. */
  cpuUsPerRequest?: Partial<Record<Subject, number>>;
  errors: number;
}

/** One value per subject measured in this run. */
function perSubject<T>(make: (subject: Subject) => T): Partial<Record<Subject, T>> {
  return Object.fromEntries(SUBJECTS.map((s) => [s, make(s)]));
}

async function benchThroughput(
  servers: Partial<Record<Subject, ServerProcess>>,
  mode: Mode,
): Promise<ThroughputFigures> {
  const { rounds, ...load } = plan.throughput;
  const rps = perSubject((): number[] => []);
  const cpu = perSubject((): number[] => []);
  let errors = 0;
  await inRounds(rounds, async (subject, round) => {
    const server = servers[subject]!;
    const r = await closedLoop(chatCompletion(server.url, mode), { ...load, cpuMs: () => cpuMsOf(server) });
    rps[subject]!.push(r.perSec);
    if (r.cpuUsPerRequest !== undefined) cpu[subject]!.push(r.cpuUsPerRequest);
    errors += r.errors;
    const cpuNote = r.cpuUsPerRequest === undefined ? "" : `   ${Math.round(r.cpuUsPerRequest)} µs CPU/request`;
    console.log(
      `  ${mode.padEnd(4)} round ${round}  ${subject.padEnd(7)} ${rate(r.perSec).padStart(7)} req/s${cpuNote}`,
    );
  });
  const bare = median(rps.bare!);
  const gateway = median(rps.gateway!);
  const poolctl = rps.poolctl && median(rps.poolctl);
  const hasCpu = SUBJECTS.every((s) => cpu[s]!.length === rounds);
  return {
    bare: Math.round(bare),
    gateway: Math.round(gateway),
    ratio: ratio(gateway, bare),
    ...(poolctl !== undefined && { poolctl: { reqPerSec: Math.round(poolctl), ratio: ratio(gateway, poolctl) } }),
    rounds: perSubject((s) => rps[s]!.map(Math.round)),
    ...(hasCpu && { cpuUsPerRequest: perSubject((s) => Math.round(median(cpu[s]!))) }),
    errors,
  };
}

interface LatencyFigures {
  /** Per subject, and `added`: the gateway's less the bare passthrough's. */
  p50Ms: Partial<Record<Subject, number>> & { added: number };
  p99Ms: Partial<Record<Subject, number>> & { added: number };
  samples: Partial<Record<Subject, number>>;
  /** How late the generator's own sends were (p99, ms): if this is large, so is the noise. */
  sendLagP99Ms: Partial<Record<Subject, number>>;
  errors: number;
}

/** Samples from every round are pooled per subject, so the p99 rests on a few thousand requests. */
async function benchLatency(urls: Partial<Record<Subject, string>>, mode: Mode): Promise<LatencyFigures> {
  const { rounds, ...load } = plan.latency;
  const samples = perSubject((): number[] => []);
  const lags = perSubject((): number[] => []);
  let errors = 0;
  await inRounds(rounds, async (subject, round) => {
    const r = await openLoop(chatCompletion(urls[subject]!, mode), load);
    samples[subject]!.push(...r.latencies);
    lags[subject]!.push(r.sendLagP99Ms);
    errors += r.errors;
    console.log(
      `  ${mode.padEnd(4)} round ${round}  ${subject.padEnd(7)} p50 ${quantile(r.latencies, 0.5).toFixed(2)} ms  p99 ${quantile(r.latencies, 0.99).toFixed(2)} ms  (${r.latencies.length} requests, send lag p99 ${r.sendLagP99Ms.toFixed(2)} ms)`,
    );
  });
  const at = (subject: Subject, q: number) =>
    quantile(
      samples[subject]!.sort((a, b) => a - b),
      q,
    );
  const p50 = perSubject((s) => at(s, 0.5));
  const p99 = perSubject((s) => at(s, 0.99));
  return {
    p50Ms: { ...perSubject((s) => round2(p50[s]!)), added: round2(p50.gateway! - p50.bare!) },
    p99Ms: { ...perSubject((s) => round2(p99[s]!)), added: round2(p99.gateway! - p99.bare!) },
    samples: perSubject((s) => samples[s]!.length),
    sendLagP99Ms: perSubject((s) => round2(median(lags[s]!))),
    errors,
  };
}

function printResults(
  throughput: Partial<Record<Mode, ThroughputFigures>>,
  latency: Partial<Record<Mode, LatencyFigures>>,
  extraRows: string[][] = [],
): void {
  const verdict = (ok: boolean) => (ok ? "ok" : "MISSED");
  const rows: string[][] = [["measure", "bare", "gateway", "result", "target", ""]];
  for (const [mode, f] of Object.entries(throughput)) {
    rows.push([
      `${mode} throughput req/s`,
      rate(f.bare),
      rate(f.gateway),
      `${f.ratio.toFixed(2)}×`,
      `≥ ${THROUGHPUT_TARGET}×`,
      verdict(f.ratio >= THROUGHPUT_TARGET),
    ]);
    if (f.poolctl) {
      const { reqPerSec, ratio: vsPoolctl } = f.poolctl;
      rows.push([
        `${mode} req/s vs poolctl proxy`,
        rate(reqPerSec),
        rate(f.gateway),
        `${vsPoolctl.toFixed(2)}×`,
        `≥ ${POOLCTL_TARGET}×`,
        verdict(vsPoolctl >= POOLCTL_TARGET),
      ]);
    }
    if (f.cpuUsPerRequest) {
      const { bare = 0, gateway = 0, poolctl } = f.cpuUsPerRequest;
      rows.push([
        `${mode} server CPU µs/request`,
        String(bare),
        String(gateway),
        `${(gateway / bare).toFixed(1)}×`,
        "",
        "",
      ]);
      if (poolctl)
        rows.push([
          `${mode} CPU µs/request vs poolctl`,
          String(poolctl),
          String(gateway),
          `${(gateway / poolctl).toFixed(1)}×`,
          "",
          "",
        ]);
    }
  }
  for (const [mode, f] of Object.entries(latency)) {
    const ms = (n: number | undefined) => (n === undefined ? "" : `${n.toFixed(2)} ms`);
    const plus = (n: number) => `${n >= 0 ? "+" : ""}${n.toFixed(2)} ms`;
    rows.push([
      `${mode} p50 @ ${rate(plan.latency.ratePerSec)}/s`,
      ms(f.p50Ms.bare),
      ms(f.p50Ms.gateway),
      plus(f.p50Ms.added),
      "",
      "",
    ]);
    rows.push([
      `${mode} p99 @ ${rate(plan.latency.ratePerSec)}/s`,
      ms(f.p99Ms.bare),
      ms(f.p99Ms.gateway),
      plus(f.p99Ms.added),
      `≤ +${ADDED_P99_TARGET_MS} ms`,
      verdict(f.p99Ms.added <= ADDED_P99_TARGET_MS),
    ]);
    if (f.p99Ms.poolctl !== undefined) {
      rows.push([
        `${mode} p99 poolctl proxy`,
        ms(f.p99Ms.bare),
        ms(f.p99Ms.poolctl),
        plus(f.p99Ms.poolctl - f.p99Ms.bare!),
        "",
        "",
      ]);
    }
  }
  printTable([...rows, ...extraRows]);
}

/** One request of each kind through each subject before timing anything: a broken setup fails loudly here. */
async function smokeTest(urls: Partial<Record<Subject, string>>): Promise<void> {
  for (const mode of MODES) {
    for (const subject of SUBJECTS) {
      const r = await closedLoop(chatCompletion(urls[subject]!, mode), { workers: 1, warmupMs: 0, durationMs: 50 });
      if (r.errors > 0 || r.completed === 0)
        throw new Error(`${subject} did not answer ${mode} requests correctly (see above)`);
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
  const servers: Partial<Record<Subject, ServerProcess>> = { bare, gateway };
  if (poolctlAvailable()) {
    const dir = join(run.tempRoot, "poolctl");
    mkdirSync(dir);
    const tokens = Array.from({ length: POOL_KEYS }, (_, i) => `k${String(i).padStart(2, "0")},sk-bench-${i}`);
    servers.poolctl = run.adopt(await startPoolctl(dir, { tokens, upstreamUrl: upstream.url }));
    SUBJECTS.push("poolctl");
  }
  const urls = perSubject((s) => servers[s]!.url);
  await smokeTest(urls);

  const throughput: Partial<Record<Mode, ThroughputFigures>> = {};
  const latency: Partial<Record<Mode, LatencyFigures>> = {};
  if (only === undefined || only === "throughput") {
    const { rounds, workers, warmupMs, durationMs } = plan.throughput;
    console.log(
      `Throughput, closed loop — ${workers} workers, ${durationMs / 1000} s after ${warmupMs / 1000} s warmup, ${rounds} rounds each`,
    );
    for (const mode of MODES) throughput[mode] = await benchThroughput(servers, mode);
  }
  if (only === undefined || only === "latency") {
    const { rounds, ratePerSec, warmupMs, durationMs } = plan.latency;
    console.log(
      `\nLatency, open loop — ${rate(ratePerSec)} req/s for ${durationMs / 1000} s after ${warmupMs / 1000} s warmup, ${rounds} rounds each`,
    );
    for (const mode of MODES) latency[mode] = await benchLatency(urls, mode);
  }

  const checkpoints =
    only === undefined || only === "checkpoints"
      ? await benchUnderCheckpoints(run, upstream.url, bare.url, MODES, plan.checkpoints)
      : undefined;

  // Stopped gracefully (not killed) so a --cpu-prof profile gets written.
  if (servers.poolctl) await run.stop(servers.poolctl);
  for (const server of [gateway, bare, upstream]) await run.stop(server);
  printResults(throughput, latency, checkpoints && checkpointRows(checkpoints, plan.checkpoints.ratePerSec));
  console.log(
    JSON.stringify({
      bench: "gateway",
      quick,
      bun: Bun.version,
      cpus: navigator.hardwareConcurrency,
      seconds: secondsSince(started),
      targets: { throughputRatio: THROUGHPUT_TARGET, addedP99Ms: ADDED_P99_TARGET_MS },
      ...((only === undefined || only === "throughput") && { throughput }),
      ...((only === undefined || only === "latency") && { latency }),
      ...(checkpoints && { checkpoints }),
    }),
  );
}

using run = new BenchRun("keypool-bench-gateway-");
await main(run);
