/**
 * The gateway benchmark's checkpoint section: the gateway's added p99 at a fixed rate while its state file
 * checkpoints. The gateway serves a pool of 100,000 keys, so each request's take and release write pages
 * across a large table and the log grows by megabytes a second; the section counts how often the log was
 * started over during the measurement (each time, a checkpoint had copied all of it), to show the
 * checkpoints really ran. The bare passthrough is measured in the same rounds, under the same load.
 *
 * Like every subject of the gateway benchmark, the 100,000-key gateway is first loaded until its JIT
 * falls quiet (_gateway-warmup.ts), once per mode: without that, its first seconds of compiling were
 * measured as checkpoint stalls. Before that, once, it serves every key of its pool (the first-use pass,
 * its rate printed), as bench:broker's daemons do: a key's first success confirms it live, which writes an
 * event and a key-log entry besides its counters — a new pool's one-time cost, not the steady state a
 * proxy that runs for days is in. Neither stops the checkpoints: with least-recently-used rotation each
 * measured request still writes a row of its own key, on a page of its own, and the log still fills and
 * starts over while the rounds run.
 *
 * The added p99 judged against the target is the median of the rounds' own differences (round i's
 * gateway p99 less round i's bare p99, measured seconds apart; see pairedDifference); the pooled p99s
 * and their difference are printed too.
 */
import { closeSync, mkdirSync, openSync, readSync } from "node:fs";
import { join } from "node:path";
import { type Mode, chatCompletion } from "./_gateway-load";
import { warmUp } from "./_gateway-warmup";
import { type Workload, closedLoop, openLoop } from "./_load";
import type { BenchRun } from "./_run";
import { pairedDifference, quantile, rate, round2 } from "./_stats";

export const CHECKPOINT_KEYS = 100_000;
/** The bound on the gateway's added p99 at 1,000 req/s. */
export const CHECKPOINT_P99_TARGET_MS = 3;
const SERVER_SCRIPT = new URL("./_gateway-bulk-server.ts", import.meta.url).pathname;
const RESTART_LOOK_MS = 10;
const FIRST_USE_WINDOW_MS = 1_000;

export interface CheckpointLoad {
  rounds: number;
  ratePerSec: number;
  warmupMs: number;
  durationMs: number;
}

export interface CheckpointFigures {
  keys: number;
  /** The first-use pass: requests until every key had served once, and their rate. */
  firstUse: { requests: number; seconds: number; perSec: number };
  /** Pooled over the rounds; `added` is the pooled difference. */
  p50Ms: { bare: number; gateway: number; added: number };
  p99Ms: { bare: number; gateway: number; added: number };
  /** The gateway's p99 less bare's, round by round (median of the rounds' differences): the figure judged. */
  addedP99Ms: number;
  roundP99Ms: { bare: number[]; gateway: number[] };
  /** Times the log was seen started over while the gateway was measured (a lower bound: it is looked at every 10 ms). */
  logRestarts: number;
  samples: { bare: number; gateway: number };
  errors: number;
}

/** Salt-1 of the write-ahead log's header, which changes each time a checkpoint lets the log start over; 0 without a log. */
function logGeneration(stateFile: string): number {
  let fd: number;
  try {
    fd = openSync(`${stateFile}-wal`, "r");
  } catch {
    return 0;
  }
  try {
    const header = Buffer.alloc(32);
    return readSync(fd, header, 0, 32, 0) === 32 ? header.readUInt32BE(16) : 0;
  } finally {
    closeSync(fd);
  }
}

// A benchmark, not a test: looking at the log's header now and then is the honest way to see restarts
// from outside the process (an emptied log has no header, so counting by subtraction would not do).
function countLogRestarts(stateFile: string): { stop(): number } {
  let last = logGeneration(stateFile);
  let restarts = 0;
  const look = () => {
    const now = logGeneration(stateFile);
    if (now !== 0 && now !== last) restarts++;
    if (now !== 0) last = now;
  };
  const timer = setInterval(look, RESTART_LOOK_MS);
  return {
    stop() {
      clearInterval(timer);
      look();
      return restarts;
    },
  };
}

export async function benchUnderCheckpoints(
  run: BenchRun,
  upstreamUrl: string,
  bareUrl: string,
  modes: readonly Mode[],
  load: CheckpointLoad,
  warm: { workers: number; maxSeconds: number },
): Promise<Partial<Record<Mode, CheckpointFigures>>> {
  const { rounds, ...openLoad } = load;
  console.log(
    `\nAdded latency while the state file checkpoints — gateway over ${rate(CHECKPOINT_KEYS)} keys, ${rate(load.ratePerSec)} req/s for ${load.durationMs / 1000} s, ${rounds} rounds each`,
  );
  const dir = join(run.tempRoot, "gateway-bulk");
  mkdirSync(dir);
  const gateway = await run.spawn("gateway@100000", SERVER_SCRIPT, [upstreamUrl, dir, String(CHECKPOINT_KEYS)]);
  const stateFile = join(dir, "state.sqlite");
  const figures: Partial<Record<Mode, CheckpointFigures>> = {};
  try {
    // First, so that the warm-up after it also lets the process settle from it (the collections its
    // growth calls for, the log it left long): measured right after the pass, the first rounds paid for it.
    const firstUse = await firstUsePass(chatCompletion(gateway.url, modes[0]!), warm.workers, CHECKPOINT_KEYS);
    console.log(
      `  first-use pass: every key served once, ${rate(firstUse.requests)} requests in ${firstUse.seconds} s (${rate(firstUse.perSec)} req/s)`,
    );
    for (const mode of modes) {
      const warmed = await warmUp(gateway, chatCompletion(gateway.url, mode), warm);
      console.log(`  ${mode.padEnd(4)} warm-up  gateway ${warmed.seconds} s`);
      const samples = { bare: [] as number[], gateway: [] as number[] };
      const roundP99 = { bare: [] as number[], gateway: [] as number[] };
      let restarts = 0;
      let errors = 0;
      for (let round = 1; round <= rounds; round++) {
        for (const subject of round % 2 === 1 ? (["bare", "gateway"] as const) : (["gateway", "bare"] as const)) {
          const counter = subject === "gateway" ? countLogRestarts(stateFile) : undefined;
          const r = await openLoop(chatCompletion(subject === "bare" ? bareUrl : gateway.url, mode), openLoad);
          const seen = counter?.stop();
          restarts += seen ?? 0;
          samples[subject].push(...r.latencies);
          roundP99[subject].push(quantile(r.latencies, 0.99));
          errors += r.errors;
          const note = seen === undefined ? "" : `, log started over ≥ ${seen} times`;
          console.log(
            `  ${mode.padEnd(4)} round ${round}  ${subject.padEnd(7)} p50 ${quantile(r.latencies, 0.5).toFixed(2)} ms  p99 ${quantile(r.latencies, 0.99).toFixed(2)} ms  (${r.latencies.length} requests${note})`,
          );
        }
      }
      const at = (values: number[], q: number) =>
        quantile(
          values.sort((a, b) => a - b),
          q,
        );
      const p50 = { bare: at(samples.bare, 0.5), gateway: at(samples.gateway, 0.5) };
      const p99 = { bare: at(samples.bare, 0.99), gateway: at(samples.gateway, 0.99) };
      figures[mode] = {
        keys: CHECKPOINT_KEYS,
        firstUse,
        addedP99Ms: round2(pairedDifference(roundP99.gateway, roundP99.bare)),
        roundP99Ms: { bare: roundP99.bare.map(round2), gateway: roundP99.gateway.map(round2) },
        p50Ms: { bare: round2(p50.bare), gateway: round2(p50.gateway), added: round2(p50.gateway - p50.bare) },
        p99Ms: { bare: round2(p99.bare), gateway: round2(p99.gateway), added: round2(p99.gateway - p99.bare) },
        logRestarts: restarts,
        samples: { bare: samples.bare.length, gateway: samples.gateway.length },
        errors,
      };
    }
  } finally {
    await run.stop(gateway);
  }
  return figures;
}

/** Serves at least `requests` requests in one-second windows of a closed loop; their count, time and rate. */
async function firstUsePass(
  workload: Workload,
  workers: number,
  requests: number,
): Promise<CheckpointFigures["firstUse"]> {
  const started = performance.now();
  let done = 0;
  while (done < requests) {
    done += (await closedLoop(workload, { workers, warmupMs: 0, durationMs: FIRST_USE_WINDOW_MS })).completed;
  }
  const seconds = (performance.now() - started) / 1000;
  return { requests: done, seconds: round2(seconds), perSec: seconds > 0 ? Math.round(done / seconds) : 0 };
}

/** Table rows for the section, beside the target. */
export function checkpointRows(figures: Partial<Record<Mode, CheckpointFigures>>, ratePerSec: number): string[][] {
  const rows: string[][] = [];
  for (const [mode, f] of Object.entries(figures)) {
    const plus = (n: number) => `${n >= 0 ? "+" : ""}${n.toFixed(2)} ms`;
    rows.push([
      `${mode} p99 @ ${rate(ratePerSec)}/s, ${rate(f.keys)} keys checkpointing (${f.logRestarts} log restarts; added: median of rounds)`,
      `${f.p99Ms.bare.toFixed(2)} ms`,
      `${f.p99Ms.gateway.toFixed(2)} ms`,
      plus(f.addedP99Ms),
      `≤ +${CHECKPOINT_P99_TARGET_MS} ms`,
      f.addedP99Ms <= CHECKPOINT_P99_TARGET_MS && f.logRestarts > 0 ? "ok" : "MISSED",
    ]);
    rows.push([`${mode} p99 same, pooled over rounds`, "", "", plus(f.p99Ms.added), "", ""]);
  }
  return rows;
}
