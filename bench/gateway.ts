/**
 * Gateway benchmark: `bun run bench:gateway [--quick] [--only=throughput|latency|checkpoints] [--breakdown] [--cpu-prof-dir=DIR]`
 *
 * The keypool gateway against a bare Bun.serve passthrough (forward + inject Authorization, nothing
 * else) and against poolctl's proxy (the Go gateway keypool replaces, from ../shared/peers/, skipped when
 * absent), in the same run and against the same fake upstream, each in its own process:
 *
 * Before a subject is first measured in a mode, it is loaded until its JIT has stopped compiling
 * (_gateway-warmup.ts): the figures are a long-running proxy's, not those of its first seconds.
 *
 * 1. Throughput — closed loop, N workers, requests/s and server CPU per request; non-streaming and SSE
 *    (whole body read). The subjects alternate round by round, and each ratio is the median of the
 *    rounds' own ratios (pairedRatio; the table's other columns are each subject's median). Targets:
 *    gateway/bare ≥ 0.9, gateway/poolctl ≥ 1.0, CPU per request ≤ 1.3× bare's.
 * 2. Added latency — open loop at fixed rates (300 and 1,000 req/s); p50/p99 through each subject (all
 *    rounds' samples pooled) and the p99 it adds to bare's, as the median of the rounds' own differences
 *    (pairedDifference; the pooled difference is in the JSON line). Targets: gateway p99 − bare p99
 *    ≤ 1 ms at 300/s, ≤ 3 ms at 1,000/s.
 * 3. Checkpoints — the same at 1,000 req/s through a gateway whose pool has 100,000 keys, so its state
 *    file's log fills and checkpoints during the measurement (see _gateway-checkpoints.ts). Target: ≤ 3 ms.
 *
 * --breakdown adds `gateway-stub`: the gateway listener over a store that does nothing, so the gateway
 * code's own cost shows apart from the store's. --cpu-prof-dir profiles the gateway processes.
 *
 * Prints a table, then one JSON line with every figure. A section is a function from the servers to
 * its figures plus its table rows (see SECTIONS); a new one is added there.
 */
import { mkdirSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { benchUnderCheckpoints, checkpointRows } from "./_gateway-checkpoints";
import { type Mode, chatCompletion } from "./_gateway-load";
import { benchTokenLines } from "./_gateway-tokens";
import { warmUp } from "./_gateway-warmup";
import { closedLoop, openLoop } from "./_load";
import { poolctlAvailable, startPoolctl } from "./_poolctl";
import { type ServerProcess, cpuMsOf, cpuProfileArgs } from "./_process";
import { printBanner, printTable, secondsSince } from "./_report";
import { BenchRun, parseBenchArgs } from "./_run";
import { median, pairedDifference, pairedRatio, quantile, rate, round2 } from "./_stats";

const THROUGHPUT_TARGET = 0.9;
const POOLCTL_TARGET = 1.0;
const CPU_TARGET = 1.3;
/** Added p99 allowed at each open-loop rate (req/s → ms). */
const ADDED_P99_TARGET_MS: Record<number, number> = { 300: 1, 1000: 3 };
const MODES: Mode[] = ["json", "sse"];
type Subject = "bare" | "gateway" | "gateway-stub" | "poolctl";
/** The subjects of this run, in the order a round measures them; bare always first (the baseline). */
const SUBJECTS: Subject[] = ["bare", "gateway"];
const SERVER_SCRIPT = new URL("./_gateway-server.ts", import.meta.url).pathname;

const { quick, only, profileDir, flags } = parseBenchArgs(process.argv.slice(2), {
  script: "bench/gateway.ts",
  only: ["throughput", "latency", "checkpoints"],
  flags: ["breakdown"],
});
const breakdown = flags.has("breakdown");

const plan = quick
  ? {
      // Each subject is first warmed to its steady state, once per mode (see _gateway-warmup.ts);
      // warmupMs is the short settling before each round's window on top of that.
      warmUpMaxSec: 15,
      throughput: { rounds: 4, workers: 32, warmupMs: 200, durationMs: 700 },
      // A p99 wants a few hundred samples at least: the slower rate runs longer.
      latency: [
        { rounds: 1, ratePerSec: 300, warmupMs: 300, durationMs: 2_000 },
        { rounds: 1, ratePerSec: 1_000, warmupMs: 300, durationMs: 1_000 },
      ],
      checkpoints: { rounds: 1, ratePerSec: 1_000, warmupMs: 300, durationMs: 2_000 },
    }
  : {
      warmUpMaxSec: 30,
      // Short windows, many rounds: this machine's speed drifts over tens of seconds (a bare Bun proxy's
      // CPU per request moved by half from one 4-second window to the next), so each subject is measured
      // often, close in time to the others, and the ratios are taken round by round (see pairedRatio).
      throughput: { rounds: 6, workers: 32, warmupMs: 500, durationMs: 2_000 },
      latency: [
        { rounds: 6, ratePerSec: 300, warmupMs: 300, durationMs: 2_000 },
        { rounds: 6, ratePerSec: 1_000, warmupMs: 300, durationMs: 1_500 },
      ],
      checkpoints: { rounds: 6, ratePerSec: 1_000, warmupMs: 300, durationMs: 2_500 },
    };

/**
 * Measures every subject in every round. Odd rounds run the subjects in order, even rounds in
 * reverse, so none always inherits another's warm caches or noise.
 */
async function inRounds(rounds: number, measure: (subject: Subject, round: number) => Promise<void>): Promise<void> {
  for (let round = 1; round <= rounds; round++) {
    for (const subject of round % 2 === 1 ? SUBJECTS : [...SUBJECTS].reverse()) await measure(subject, round);
  }
}

const warmed = new Set<string>();

/**
 * Brings every subject to its steady state for `mode` before its first measurement in the run: the
 * figures are those of a long-running proxy, not of one still compiling its code (see _gateway-warmup.ts).
 */
async function warmSubjects(servers: Partial<Record<Subject, ServerProcess>>, mode: Mode): Promise<void> {
  for (const subject of SUBJECTS) {
    if (warmed.has(`${subject} ${mode}`)) continue;
    warmed.add(`${subject} ${mode}`);
    const server = servers[subject]!;
    const { workers } = plan.throughput;
    const r = await warmUp(server, chatCompletion(server.url, mode), { workers, maxSeconds: plan.warmUpMaxSec });
    const jit =
      r.jitShare === undefined ? "" : ` (JIT threads ${(r.jitShare * 100).toFixed(1)}% of its CPU at the end)`;
    console.log(`  ${mode.padEnd(4)} warm-up  ${subject.padEnd(12)} ${r.seconds} s${jit}`);
  }
}

/** One value per subject measured in this run. */
function perSubject<T>(make: (subject: Subject) => T): Partial<Record<Subject, T>> {
  return Object.fromEntries(SUBJECTS.map((s) => [s, make(s)]));
}

/** Every subject but the baseline. */
const others = () => SUBJECTS.filter((s) => s !== "bare");

interface ThroughputFigures {
  /** Median req/s per subject. */
  reqPerSec: Partial<Record<Subject, number>>;
  /** Each subject's req/s over bare's, round by round (see pairedRatio). */
  ratioToBare: Partial<Record<Subject, number>>;
  /** The gateway's req/s over poolctl's, when its binary is present. */
  gatewayToPoolctl?: number;
  rounds: Partial<Record<Subject, number[]>>;
  /** Median CPU time each server spent per request, in µs (Linux only): steadier than req/s on a busy box. */
  cpuUsPerRequest?: Partial<Record<Subject, number>>;
  /** Each subject's CPU per request over bare's, round by round (see pairedRatio). */
  cpuRatioToBare?: Partial<Record<Subject, number>>;
  errors: number;
}

async function benchThroughput(
  servers: Partial<Record<Subject, ServerProcess>>,
  mode: Mode,
): Promise<ThroughputFigures> {
  const { rounds, ...load } = plan.throughput;
  const rps = perSubject((): number[] => []);
  const cpu = perSubject((): number[] => []);
  let errors = 0;
  await warmSubjects(servers, mode);
  await inRounds(rounds, async (subject, round) => {
    const server = servers[subject]!;
    const r = await closedLoop(chatCompletion(server.url, mode), { ...load, cpuMs: () => cpuMsOf(server) });
    rps[subject]!.push(r.perSec);
    if (r.cpuUsPerRequest !== undefined) cpu[subject]!.push(r.cpuUsPerRequest);
    errors += r.errors;
    const cpuNote = r.cpuUsPerRequest === undefined ? "" : `   ${Math.round(r.cpuUsPerRequest)} µs CPU/request`;
    console.log(
      `  ${mode.padEnd(4)} round ${round}  ${subject.padEnd(12)} ${rate(r.perSec).padStart(7)} req/s${cpuNote}`,
    );
  });
  const medians = perSubject((s) => median(rps[s]!));
  const hasCpu = SUBJECTS.every((s) => cpu[s]!.length === rounds);
  return {
    reqPerSec: perSubject((s) => Math.round(medians[s]!)),
    ratioToBare: Object.fromEntries(others().map((s) => [s, pairedRatio(rps[s]!, rps.bare!)])),
    ...(rps.poolctl !== undefined && { gatewayToPoolctl: pairedRatio(rps.gateway!, rps.poolctl) }),
    rounds: perSubject((s) => rps[s]!.map(Math.round)),
    ...(hasCpu && {
      cpuUsPerRequest: perSubject((s) => Math.round(median(cpu[s]!))),
      cpuRatioToBare: Object.fromEntries(others().map((s) => [s, pairedRatio(cpu[s]!, cpu.bare!)])),
    }),
    errors,
  };
}

interface LatencyFigures {
  ratePerSec: number;
  p50Ms: Partial<Record<Subject, number>>;
  p99Ms: Partial<Record<Subject, number>>;
  /** Each subject's p99 less bare's, round by round (see pairedDifference): the latency it adds. */
  addedP99Ms: Partial<Record<Subject, number>>;
  /** The same from every round's samples pooled: one stalled window weighs on whichever subject it hit. */
  pooledAddedP99Ms: Partial<Record<Subject, number>>;
  /** Each round's p99 per subject, in the order measured. */
  roundP99Ms: Partial<Record<Subject, number[]>>;
  samples: Partial<Record<Subject, number>>;
  /** How late the generator's own sends were (p99, ms): if this is large, so is the noise. */
  sendLagP99Ms: Partial<Record<Subject, number>>;
  errors: number;
}

/**
 * The p99 and p50 shown per subject pool every round's samples, so they rest on as many requests as the
 * run made; the added p99 judged against the target is the median of the rounds' own differences.
 */
async function benchLatency(
  servers: Partial<Record<Subject, ServerProcess>>,
  mode: Mode,
  step: (typeof plan.latency)[number],
): Promise<LatencyFigures> {
  const { rounds, ...load } = step;
  const samples = perSubject((): number[] => []);
  const roundP99 = perSubject((): number[] => []);
  const lags = perSubject((): number[] => []);
  let errors = 0;
  await warmSubjects(servers, mode);
  await inRounds(rounds, async (subject, round) => {
    const r = await openLoop(chatCompletion(servers[subject]!.url, mode), load);
    samples[subject]!.push(...r.latencies);
    roundP99[subject]!.push(quantile(r.latencies, 0.99));
    lags[subject]!.push(r.sendLagP99Ms);
    errors += r.errors;
    const p50 = quantile(r.latencies, 0.5).toFixed(2);
    const p99 = quantile(r.latencies, 0.99).toFixed(2);
    console.log(
      `  ${mode.padEnd(4)} ${rate(load.ratePerSec).padStart(5)}/s round ${round}  ${subject.padEnd(12)} p50 ${p50} ms  p99 ${p99} ms  (${r.latencies.length} requests, send lag p99 ${r.sendLagP99Ms.toFixed(2)} ms)`,
    );
  });
  for (const s of SUBJECTS) samples[s]!.sort((a, b) => a - b);
  const p99 = perSubject((s) => quantile(samples[s]!, 0.99));
  return {
    ratePerSec: load.ratePerSec,
    p50Ms: perSubject((s) => round2(quantile(samples[s]!, 0.5))),
    p99Ms: perSubject((s) => round2(p99[s]!)),
    addedP99Ms: Object.fromEntries(others().map((s) => [s, round2(pairedDifference(roundP99[s]!, roundP99.bare!))])),
    pooledAddedP99Ms: Object.fromEntries(others().map((s) => [s, round2(p99[s]! - p99.bare!)])),
    roundP99Ms: perSubject((s) => roundP99[s]!.map(round2)),
    samples: perSubject((s) => samples[s]!.length),
    sendLagP99Ms: perSubject((s) => round2(median(lags[s]!))),
    errors,
  };
}

const verdict = (ok: boolean) => (ok ? "ok" : "MISSED");
const times = (n: number) => `${n.toFixed(2)}×`;
const plus = (n: number) => `${n >= 0 ? "+" : ""}${n.toFixed(2)} ms`;

/** Rows of the result table: measure, baseline, subject, result, target, verdict. */
function throughputRows(mode: Mode, f: ThroughputFigures): string[][] {
  const rows: string[][] = [];
  const bare = f.reqPerSec.bare!;
  for (const s of others()) {
    const target = s === "gateway" ? THROUGHPUT_TARGET : undefined;
    const r = f.ratioToBare[s]!;
    rows.push([`${mode} req/s ${s} vs bare`, rate(bare), rate(f.reqPerSec[s]!), times(r), ...targetCells(r, target)]);
  }
  if (f.gatewayToPoolctl !== undefined) {
    const r = f.gatewayToPoolctl;
    const cells = [rate(f.reqPerSec.poolctl!), rate(f.reqPerSec.gateway!), times(r)];
    rows.push([`${mode} req/s gateway vs poolctl`, ...cells, ...targetCells(r, POOLCTL_TARGET)]);
  }
  const cpu = f.cpuUsPerRequest;
  if (cpu && f.cpuRatioToBare) {
    for (const s of others()) {
      const r = f.cpuRatioToBare[s]!;
      const target = s === "gateway" ? CPU_TARGET : undefined;
      const cells = [String(cpu.bare), String(cpu[s]), times(r)];
      rows.push([`${mode} CPU µs/request ${s}`, ...cells, ...targetCells(r, target, "≤")]);
    }
    // Where the gateway's extra CPU goes: its own code (stub less bare), the store (real less stub).
    if (cpu["gateway-stub"] !== undefined) {
      const own = cpu["gateway-stub"] - cpu.bare!;
      const store = cpu.gateway! - cpu["gateway-stub"];
      rows.push([`${mode} CPU µs: gateway code / store`, "", `${own} / ${store}`, "", "", ""]);
    }
  }
  return rows;
}

function latencyRows(mode: Mode, f: LatencyFigures): string[][] {
  const rows: string[][] = [];
  const at = `@ ${rate(f.ratePerSec)}/s`;
  const ms = (n: number | undefined) => (n === undefined ? "" : `${n.toFixed(2)} ms`);
  const target = ADDED_P99_TARGET_MS[f.ratePerSec];
  rows.push([`${mode} p50 gateway ${at}`, ms(f.p50Ms.bare), ms(f.p50Ms.gateway), "", "", ""]);
  for (const s of others()) {
    const added = f.addedP99Ms[s]!;
    const checked = s === "gateway" && target !== undefined;
    rows.push([
      `${mode} p99 ${s} ${at} (added: median of rounds)`,
      ms(f.p99Ms.bare),
      ms(f.p99Ms[s]),
      plus(added),
      checked ? `≤ +${target} ms` : "",
      checked ? verdict(added <= target) : "",
    ]);
  }
  return rows;
}

function targetCells(value: number, target: number | undefined, sense: "≥" | "≤" = "≥"): string[] {
  if (target === undefined) return ["", ""];
  return [`${sense} ${target}×`, verdict(sense === "≥" ? value >= target : value <= target)];
}

/** One request of each kind through each subject before timing anything: a broken setup fails loudly here. */
async function smokeTest(urls: Partial<Record<Subject, string>>): Promise<void> {
  for (const mode of MODES) {
    for (const subject of SUBJECTS) {
      // One request, however long it takes: on a loaded machine a first request can outlast a short window.
      await chatCompletion(urls[subject]!, mode)
        .send()
        .catch((error: Error) => {
          throw new Error(`${subject} did not answer a ${mode} request correctly: ${error.message}`);
        });
    }
  }
}

/** What a section hands back: its figures for the JSON line, its rows for the table. */
interface SectionResult {
  figures: unknown;
  rows: string[][];
}

interface Servers {
  processes: Partial<Record<Subject, ServerProcess>>;
  urls: Partial<Record<Subject, string>>;
  upstreamUrl: string;
  run: BenchRun;
}

async function throughputSection({ processes }: Servers): Promise<SectionResult> {
  const { rounds, workers, warmupMs, durationMs } = plan.throughput;
  console.log(
    `Throughput, closed loop — ${workers} workers, ${durationMs / 1000} s after ${warmupMs / 1000} s warmup, ${rounds} rounds each`,
  );
  const figures: Partial<Record<Mode, ThroughputFigures>> = {};
  const rows: string[][] = [];
  for (const mode of MODES) {
    figures[mode] = await benchThroughput(processes, mode);
    rows.push(...throughputRows(mode, figures[mode]!));
  }
  return { figures, rows };
}

async function latencySection({ processes }: Servers): Promise<SectionResult> {
  const figures: Partial<Record<Mode, LatencyFigures[]>> = {};
  const rows: string[][] = [];
  for (const step of plan.latency) {
    const { rounds, ratePerSec, warmupMs, durationMs } = step;
    console.log(
      `\nLatency, open loop — ${rate(ratePerSec)} req/s for ${durationMs / 1000} s after ${warmupMs / 1000} s warmup, ${rounds} rounds each`,
    );
    for (const mode of MODES) (figures[mode] ??= []).push(await benchLatency(processes, mode, step));
  }
  for (const mode of MODES) for (const f of figures[mode]!) rows.push(...latencyRows(mode, f));
  return { figures, rows };
}

/** The gateway's added p99 while a 100,000-key pool's state file checkpoints (see _gateway-checkpoints.ts). */
async function checkpointsSection({ run, upstreamUrl, urls }: Servers): Promise<SectionResult> {
  const figures = await benchUnderCheckpoints(run, upstreamUrl, urls.bare!, MODES, plan.checkpoints, {
    workers: plan.throughput.workers,
    maxSeconds: plan.warmUpMaxSec,
  });
  return { figures, rows: checkpointRows(figures, plan.checkpoints.ratePerSec) };
}

/** The benchmark's parts, in the order they run; --only picks one by name. */
const SECTIONS: Record<string, (servers: Servers) => Promise<SectionResult>> = {
  throughput: throughputSection,
  latency: latencySection,
  checkpoints: checkpointsSection,
};

async function main(run: BenchRun): Promise<void> {
  printBanner("gateway", quick);
  const started = performance.now();
  const loadBefore = loadavg();
  const profileArgs = cpuProfileArgs(profileDir);

  const upstream = await run.spawn("upstream", SERVER_SCRIPT, ["upstream"]);
  const processes: Partial<Record<Subject, ServerProcess>> = {};
  processes.bare = await run.spawn("bare", SERVER_SCRIPT, ["bare", upstream.url]);
  const stateDirOf = (name: string) => {
    const dir = join(run.tempRoot, name);
    mkdirSync(dir);
    return dir;
  };
  processes.gateway = await run.spawn(
    "gateway",
    SERVER_SCRIPT,
    ["gateway", upstream.url, stateDirOf("gateway")],
    profileArgs,
  );
  if (breakdown) {
    processes["gateway-stub"] = await run.spawn(
      "gateway-stub",
      SERVER_SCRIPT,
      ["gateway-stub", upstream.url, stateDirOf("gateway-stub")],
      profileArgs,
    );
    SUBJECTS.push("gateway-stub");
  }
  if (poolctlAvailable()) {
    const tokens = benchTokenLines();
    processes.poolctl = run.adopt(await startPoolctl(stateDirOf("poolctl"), { tokens, upstreamUrl: upstream.url }));
    SUBJECTS.push("poolctl");
  }
  const servers: Servers = { processes, urls: perSubject((s) => processes[s]!.url), upstreamUrl: upstream.url, run };
  await smokeTest(servers.urls);

  const figures: Record<string, unknown> = {};
  const rows: string[][] = [["measure", "baseline", "subject", "result", "target", ""]];
  for (const [name, section] of Object.entries(SECTIONS)) {
    if (only && only !== name) continue;
    const result = await section(servers);
    figures[name] = result.figures;
    rows.push(...result.rows);
  }

  // Stopped gracefully (not killed) so a --cpu-prof profile gets written.
  for (const s of [...SUBJECTS].reverse()) await run.stop(processes[s]!);
  await run.stop(upstream);
  printTable(rows);
  const loadAfter = loadavg();
  console.log(`\nload average (1 min) ${loadBefore[0]!.toFixed(2)} before, ${loadAfter[0]!.toFixed(2)} after`);
  console.log(
    JSON.stringify({
      bench: "gateway",
      quick,
      bun: Bun.version,
      cpus: navigator.hardwareConcurrency,
      loadAverage: { before: round2(loadBefore[0]!), after: round2(loadAfter[0]!) },
      seconds: secondsSince(started),
      targets: {
        throughputRatio: THROUGHPUT_TARGET,
        poolctlRatio: POOLCTL_TARGET,
        cpuRatio: CPU_TARGET,
        addedP99Ms: ADDED_P99_TARGET_MS,
      },
      ...figures,
    }),
  );
}

using run = new BenchRun("keypool-bench-gateway-");
await main(run);
