/**
 * Broker benchmark: `bun run bench:broker [--quick] [--only=http|store|models] [--cpu-prof-dir=DIR]`
 *
 * Shared, noisy machines make absolute numbers meaningless, so every figure is a ratio against a
 * reference measured in the same run:
 *
 * 1. HTTP — /take + /release pairs per second through the real daemon, versus a bare Bun.serve
 *    answering the same request shapes, and versus poolctl (the Go broker keypool replaces, from
 *    ../shared/peers/, skipped when absent), each broker with a pool of 10 and of 100,000 keys. Each
 *    server runs in its own process; they alternate in rounds, and each ratio is the median of the
 *    rounds' own ratios (pairedRatio; the pairs/s shown are each target's median). Targets:
 *    daemon/bare ≥ 0.6 (10 keys), daemon/poolctl ≥ 1.0 at both sizes, daemon 100k/10 ≥ 0.8.
 *    Before the rounds, each daemon serves every key of its pool once (the first-use pass, printed
 *    beside the rounds): a key's first success confirms it live, which writes an event and a key-log
 *    entry, so a fresh 100,000-key pool is slower for as long as it takes to use each key once. The
 *    rounds then measure what a pool that has been running does — as the 10-key pool is after its
 *    first ten pairs.
 * 2. Store — in-process take+release pairs per second at 10 keys versus 100,000 keys, per rotation.
 *    Target: 100k/10 ≥ 0.8 (a take must stay O(log n) in pool size).
 * 3. Models — pairs per second when each take names one of 100 models (a tenth of the pool's (key,
 *    model) pairs resting), versus takes that name none: through the daemon over HTTP (`?model=` and
 *    the release's `model`, 10 keys) and in-process. Target: ≥ 0.8 for both. `--only=models` runs these alone.
 *
 * Prints a table, then one JSON line with every figure. --cpu-prof-dir profiles the daemon process.
 * --breakdown adds two more HTTP targets to the rounds, to tell where the daemon's time goes:
 * the daemon with in-memory SQLite (no file I/O), and the real HTTP app over a do-nothing store.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Rotation } from "../src/config/types";
import { takeAndRelease } from "./_broker-load";
import { benchKeys } from "./_keys";
import { measureStore } from "./_broker-store";
import { MODEL_COUNT, type ModelRunResult, measureModels, modelName } from "./_broker-models";
import { closedLoop } from "./_load";
import { poolctlAvailable, startPoolctl } from "./_poolctl";
import { type ServerProcess, cpuProfileArgs } from "./_process";
import { printBanner, printTable, secondsSince } from "./_report";
import { BenchRun, parseBenchArgs } from "./_run";
import { median, pairedRatio, quantile, rate, ratio, round2 } from "./_stats";

const HTTP_TARGET = 0.6;
const POOLCTL_TARGET = 1.0;
/** Pool sizes the HTTP targets serve; the daemon at the largest must keep SIZE_TARGET of its rate at the smallest. */
const ALL_HTTP_SIZES = [10, 100_000] as const;
const SIZE_TARGET = 0.8;
const STORE_TARGET = 0.8;
const STORE_SIZES = [10, 100_000] as const;
const MODELS_TARGET = 0.8;
const ROTATIONS: Rotation[] = ["lru", "weighted", "round_robin"];
const SERVER_SCRIPT = new URL("./_broker-server.ts", import.meta.url).pathname;

type TargetKind = "daemon" | "bare" | "daemon-memory" | "api-stub" | "poolctl";

/** One server measured: a kind, and for the brokers the pool size it serves. */
interface Target {
  kind: TargetKind;
  keys: number;
  /** Every take names one of MODEL_COUNT models, a tenth of the pool's pairs resting (see primeModels). */
  models?: boolean;
  /** `daemon@100000`, `bare`: the key of its figures. */
  label: string;
}

const { quick, only, profileDir, flags } = parseBenchArgs(process.argv.slice(2), {
  script: "bench/broker.ts",
  only: ["http", "store", "models"],
  flags: ["breakdown"],
});
const breakdown = flags.has("breakdown");
/** `--only=models` measures the smallest pool alone, with and without models. */
const HTTP_SIZES: readonly number[] = only === "models" ? [ALL_HTTP_SIZES[0]] : ALL_HTTP_SIZES;

const plan = quick
  ? {
      http: { rounds: 3, workers: 32, warmupMs: 300, durationMs: 700 },
      store: { pairs: 5_000, roundMs: 500, warmupPairs: 1_000, rounds: 3 },
    }
  : {
      // Short windows, many rounds, ratios taken round by round (pairedRatio): this machine's speed drifts
      // over tens of seconds, by more than the targets' margins.
      http: { rounds: 5, workers: 32, warmupMs: 1_000, durationMs: 2_000 },
      store: { pairs: 20_000, roundMs: 1_500, warmupPairs: 2_000, rounds: 3 },
    };

using run = new BenchRun("keypool-bench-");

interface HttpFigures {
  bare: number;
  /** The daemon's pairs/s at the smallest pool, and its ratio to bare. */
  daemon: number;
  ratio: number;
  /** Pairs/s per pool size. */
  daemonBySize: Record<string, number>;
  /** The daemon's pairs/s at the largest pool over the smallest. */
  largeVsSmall: number;
  /** Pairs/s of each daemon's first-use pass (every key served once; see the header), by label. */
  firstUse: Record<string, { pairs: number; seconds: number; pairsPerSec: number }>;
  /** poolctl's pairs/s per pool size and the daemon's ratio to it, when its binary is present. */
  poolctl?: Record<string, { pairsPerSec: number; ratio: number }>;
  /** The daemon at the smallest pool when each take names one of 100 models, and its ratio to takes naming none. */
  models?: { pairsPerSec: number; ratio: number };
  /** With --breakdown: each extra target's pairs/s and its ratio to bare. */
  breakdown?: Partial<Record<TargetKind, { pairsPerSec: number; ratio: number }>>;
  rounds: Record<string, number[]>;
  p50Ms: Record<string, number>;
  p99Ms: Record<string, number>;
  errors: number;
}

function httpTargets(withPoolctl: boolean): Target[] {
  const at = (kind: TargetKind, keys: number): Target => ({ kind, keys, label: `${kind}@${keys}` });
  const small = HTTP_SIZES[0]!;
  const targets: Target[] = [{ kind: "bare", keys: 0, label: "bare" }];
  for (const keys of HTTP_SIZES) targets.push(at("daemon", keys));
  if (only === "models" || only === undefined)
    targets.push({ ...at("daemon", small), label: `daemon-models@${small}`, models: true });
  if (breakdown) targets.push(at("daemon-memory", small), at("api-stub", small));
  if (withPoolctl && only !== "models") for (const keys of HTTP_SIZES) targets.push(at("poolctl", keys));
  return targets;
}

async function startTarget(target: Target, profileArgs: string[]): Promise<ServerProcess> {
  const dir = join(run.tempRoot, target.label.replace("@", "-"));
  mkdirSync(dir, { recursive: true });
  if (target.kind === "poolctl") return run.adopt(await startPoolctl(dir, { tokens: poolctlTokens(target.keys) }));
  const args = [target.kind, dir, String(target.keys || HTTP_SIZES[0])];
  const server = await run.spawn(target.label, SERVER_SCRIPT, args, target.kind === "daemon" ? profileArgs : []);
  if (target.models) await primeModels(server.url, target.keys);
  return server;
}

/** Rests a tenth of the (key, model) pairs for an hour, as model-aware traffic leaves a pool. */
async function primeModels(url: string, keys: number): Promise<void> {
  for (const [k, key] of benchKeys(keys).entries()) {
    for (let m = 0; m < MODEL_COUNT; m++) {
      if ((k + m) % 10 !== 0) continue;
      const body = { id: key.id, ok: false, status: 429, retry_after_sec: 3600, model: modelName(m) };
      const res = await fetch(`${url}/release`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      if (!res.ok) throw new Error(`priming ${key.id} for ${modelName(m)}: HTTP ${res.status}`);
    }
  }
}

async function benchHttp(): Promise<HttpFigures> {
  const { rounds, ...load } = plan.http;
  const targets = httpTargets(poolctlAvailable());
  console.log(
    `HTTP /take + /release pairs/s — ${load.workers} workers, ${load.durationMs / 1000} s after ${load.warmupMs / 1000} s warmup, ${rounds} rounds each; pools of ${HTTP_SIZES.map(rate).join(" and ")} keys`,
  );
  const profileArgs = cpuProfileArgs(profileDir);
  const servers = new Map<string, ServerProcess>();
  const results = new Map<string, { rps: number[]; p50: number[]; p99: number[] }>();
  const firstUse: HttpFigures["firstUse"] = {};
  let errors = 0;
  try {
    for (const target of targets) {
      if (target.kind !== "poolctl") servers.set(target.label, await startTarget(target, profileArgs));
      results.set(target.label, { rps: [], p50: [], p99: [] });
    }
    for (const target of targets) {
      if (target.kind !== "daemon" || target.models) continue;
      const pass = await useEveryKeyOnce(servers.get(target.label)!.url, target.keys, load.workers);
      firstUse[target.label] = { pairs: pass.pairs, seconds: pass.seconds, pairsPerSec: pass.pairsPerSec };
      errors += pass.errors;
      console.log(
        `  first use ${target.label.padEnd(16)} ${rate(pass.pairsPerSec).padStart(8)} pairs/s   (${rate(pass.pairs)} pairs in ${pass.seconds} s: every key once)`,
      );
    }
    for (let round = 1; round <= rounds; round++) {
      for (const target of targets) {
        const { kind, label } = target;
        // poolctl runs only for its own measurement: its checker forks the check command for every key
        // (at 100,000 keys, for many minutes), which would weigh on the other targets' rounds.
        const transient = kind === "poolctl" ? await startTarget(target, profileArgs) : undefined;
        const url = (transient ?? servers.get(label)!).url;
        const workload = takeAndRelease(
          url,
          kind === "poolctl" ? "id" : "lease",
          target.models ? modelName : undefined,
        );
        const r = await closedLoop(workload, load);
        if (transient) await run.stop(transient);
        const p50 = quantile(r.latencies, 0.5);
        const p99 = quantile(r.latencies, 0.99);
        const into = results.get(label)!;
        into.rps.push(r.perSec);
        into.p50.push(p50);
        into.p99.push(p99);
        errors += r.errors;
        console.log(
          `  round ${round}  ${label.padEnd(20)} ${rate(r.perSec).padStart(8)} pairs/s   p50 ${p50.toFixed(2)} ms   p99 ${p99.toFixed(2)} ms`,
        );
      }
    }
  } finally {
    for (const server of servers.values()) await run.stop(server);
  }
  const medianOf = (label: string) => median(results.get(label)!.rps);
  const roundsOf = (label: string) => results.get(label)!.rps;
  /** `label`'s pairs/s over `reference`'s, as the median of the rounds' own ratios (see pairedRatio). */
  const over = (label: string, reference: string) => pairedRatio(roundsOf(label), roundsOf(reference));
  const bare = medianOf("bare");
  const daemonAt = (keys: number) => medianOf(`daemon@${keys}`);
  const [small, large] = [HTTP_SIZES[0]!, HTTP_SIZES[HTTP_SIZES.length - 1]!];
  const labels = targets.map((t) => t.label);
  const perLabel = <T>(f: (label: string) => T) => Object.fromEntries(labels.map((l) => [l, f(l)]));
  const extra = targets.filter((t) => t.kind === "daemon-memory" || t.kind === "api-stub");
  const modelsTarget = targets.find((t) => t.models);
  const withPoolctl = targets.some((t) => t.kind === "poolctl");
  return {
    bare: Math.round(bare),
    daemon: Math.round(daemonAt(small)),
    ratio: over(`daemon@${small}`, "bare"),
    daemonBySize: Object.fromEntries(HTTP_SIZES.map((keys) => [String(keys), Math.round(daemonAt(keys))])),
    largeVsSmall: over(`daemon@${large}`, `daemon@${small}`),
    firstUse,
    ...(withPoolctl && {
      poolctl: Object.fromEntries(
        HTTP_SIZES.map((keys) => {
          const theirs = medianOf(`poolctl@${keys}`);
          return [String(keys), { pairsPerSec: Math.round(theirs), ratio: over(`daemon@${keys}`, `poolctl@${keys}`) }];
        }),
      ),
    }),
    ...(extra.length > 0 && {
      breakdown: Object.fromEntries(
        extra.map((t) => [t.kind, { pairsPerSec: Math.round(medianOf(t.label)), ratio: over(t.label, "bare") }]),
      ),
    }),
    ...(modelsTarget && {
      models: {
        pairsPerSec: Math.round(medianOf(modelsTarget.label)),
        ratio: over(modelsTarget.label, `daemon@${small}`),
      },
    }),
    rounds: perLabel((l) => results.get(l)!.rps.map(Math.round)),
    p50Ms: perLabel((l) => round2(median(results.get(l)!.p50))),
    p99Ms: perLabel((l) => round2(median(results.get(l)!.p99))),
    errors,
  };
}

/** Windows of the first-use pass: at least this many, so a small pool's pass also covers the JIT's first seconds. */
const FIRST_USE_MIN_WINDOWS = 2;
const FIRST_USE_WINDOW_MS = 1_000;

/**
 * Loads a daemon until it has handed out at least `keys` pairs (an lru pool then has served each of its
 * keys once), in one-second windows; returns the pass's rate.
 */
async function useEveryKeyOnce(
  url: string,
  keys: number,
  workers: number,
): Promise<{ pairs: number; seconds: number; pairsPerSec: number; errors: number }> {
  const workload = takeAndRelease(url);
  let pairs = 0;
  let errors = 0;
  let windows = 0;
  const started = performance.now();
  while (pairs < keys || windows < FIRST_USE_MIN_WINDOWS) {
    const r = await closedLoop(workload, { workers, warmupMs: 0, durationMs: FIRST_USE_WINDOW_MS });
    pairs += r.completed;
    errors += r.errors;
    windows++;
  }
  const seconds = (performance.now() - started) / 1000;
  return { pairs, seconds: round2(seconds), pairsPerSec: Math.round(pairs / seconds), errors };
}

interface StoreFigures {
  k10: number;
  k100000: number;
  ratio: number;
  rounds: Record<string, number[]>;
  setupMs: Record<string, number>;
}

async function benchStore(): Promise<Record<string, StoreFigures>> {
  const { pairs, roundMs, warmupPairs, rounds } = plan.store;
  console.log(
    `\nStore take+release pairs/s in-process — ${rate(pairs)} pairs or ${roundMs / 1000} s per round, whichever first, after ${rate(warmupPairs)} warmup; median of ${rounds} rounds`,
  );
  const dir = join(run.tempRoot, "store");
  mkdirSync(dir);
  const figures: Record<string, StoreFigures> = {};
  for (const rotation of ROTATIONS) {
    const r = await measureStore(dir, rotation, { sizes: STORE_SIZES, pairs, roundMs, warmupPairs, rounds });
    const small = r.perSize[10]!.median;
    const large = r.perSize[100_000]!.median;
    figures[rotation] = {
      k10: Math.round(small),
      k100000: Math.round(large),
      ratio: ratio(large, small),
      rounds: Object.fromEntries(STORE_SIZES.map((s) => [String(s), r.perSize[s]!.rounds.map(Math.round)])),
      setupMs: Object.fromEntries(STORE_SIZES.map((s) => [String(s), r.setupMs[s]!])),
    };
    console.log(
      `  ${rotation.padEnd(12)} 10 keys ${rate(small).padStart(8)}   100k keys ${rate(large).padStart(8)}   (100k setup ${r.setupMs[100_000]} ms)`,
    );
  }
  return figures;
}

async function benchModels(): Promise<ModelRunResult> {
  const { pairs, roundMs, warmupPairs, rounds } = plan.store;
  const dir = join(run.tempRoot, "models");
  mkdirSync(dir);
  const r = await measureModels(dir, { pairs, roundMs, warmupPairs, rounds });
  console.log(
    `\nStore take+release pairs/s in-process, ${MODEL_COUNT} models (${r.restingPairs} pairs resting) — without a model ${rate(r.withoutModel)}, with one ${rate(r.withModel)}`,
  );
  return r;
}

/** poolctl's tokens file for a pool of `count` keys (ids and tokens as bench/_keys.ts makes them). */
function poolctlTokens(count: number): string[] {
  return benchKeys(count).map((key) => `${key.id},${key.token}`);
}

function verdict(value: number, target: number): string {
  return value >= target ? "ok" : "BELOW";
}

function printResults(
  http: HttpFigures | undefined,
  store: Record<string, StoreFigures> | undefined,
  models: ModelRunResult | undefined,
): void {
  const rows: string[][] = [["measure", "reference", "subject", "ratio", "target", ""]];
  if (http) {
    const [small, large] = [HTTP_SIZES[0]!, HTTP_SIZES[HTTP_SIZES.length - 1]!];
    rows.push([
      `http pairs/s daemon vs bare, ${rate(small)} keys`,
      rate(http.bare),
      rate(http.daemon),
      `${http.ratio.toFixed(2)}×`,
      `≥ ${HTTP_TARGET}`,
      verdict(http.ratio, HTTP_TARGET),
    ]);
    for (const keys of HTTP_SIZES) {
      const vs = http.poolctl?.[String(keys)];
      if (!vs) continue;
      const ours = http.daemonBySize[String(keys)]!;
      // At 100,000 keys poolctl may finish no pair at all inside a short window: the daemon is then ahead without bound.
      const none = vs.pairsPerSec === 0;
      rows.push([
        `http pairs/s daemon vs poolctl, ${rate(keys)} keys`,
        rate(vs.pairsPerSec),
        rate(ours),
        none ? "∞ (poolctl: no pair done)" : `${vs.ratio.toFixed(2)}×`,
        `≥ ${POOLCTL_TARGET}`,
        none ? verdict(ours > 0 ? Number.POSITIVE_INFINITY : 0, POOLCTL_TARGET) : verdict(vs.ratio, POOLCTL_TARGET),
      ]);
    }
    if (large !== small)
      rows.push([
        `http pairs/s daemon ${rate(large)} vs ${rate(small)} keys`,
        rate(http.daemonBySize[String(small)]!),
        rate(http.daemonBySize[String(large)]!),
        `${http.largeVsSmall.toFixed(2)}×`,
        `≥ ${SIZE_TARGET}`,
        verdict(http.largeVsSmall, SIZE_TARGET),
      ]);
    if (http.models) {
      rows.push([
        `http pairs/s daemon, take naming 1 of ${MODEL_COUNT} models vs none, ${rate(small)} keys`,
        rate(http.daemonBySize[String(small)]!),
        rate(http.models.pairsPerSec),
        `${http.models.ratio.toFixed(2)}×`,
        `≥ ${MODELS_TARGET}`,
        verdict(http.models.ratio, MODELS_TARGET),
      ]);
    }
    for (const [kind, f] of Object.entries(http.breakdown ?? {})) {
      rows.push([
        `  (diagnostic) ${kind} vs bare`,
        rate(http.bare),
        rate(f.pairsPerSec),
        `${f.ratio.toFixed(2)}×`,
        "",
        "",
      ]);
    }
  }
  for (const [rotation, f] of Object.entries(store ?? {})) {
    rows.push([
      `store ${rotation} 100k vs 10 keys`,
      rate(f.k10),
      rate(f.k100000),
      `${f.ratio.toFixed(2)}×`,
      `≥ ${STORE_TARGET}`,
      verdict(f.ratio, STORE_TARGET),
    ]);
  }
  if (models) {
    const r = ratio(models.withModel, models.withoutModel);
    rows.push([
      `store take with 1 of ${MODEL_COUNT} models vs none`,
      rate(models.withoutModel),
      rate(models.withModel),
      `${r.toFixed(2)}×`,
      `≥ ${MODELS_TARGET}`,
      verdict(r, MODELS_TARGET),
    ]);
  }
  printTable(rows);
}

printBanner("broker", quick);
const started = performance.now();
const http = only === undefined || only === "http" || only === "models" ? await benchHttp() : undefined;
const store = only === undefined || only === "store" ? await benchStore() : undefined;
const models = only === undefined || only === "models" ? await benchModels() : undefined;
printResults(http, store, models);
const summary = {
  bench: "broker",
  quick,
  bun: Bun.version,
  seconds: secondsSince(started),
  ...(http && { http }),
  ...(store && { store }),
  ...(models && { models: { ...models, ratio: ratio(models.withModel, models.withoutModel) } }),
};
console.log(JSON.stringify(summary));
