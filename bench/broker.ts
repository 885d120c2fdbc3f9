/**
 * Broker benchmark: `bun run bench:broker [--quick] [--only=http|store] [--cpu-prof-dir=DIR]`
 *
 * Shared, noisy machines make absolute numbers meaningless, so every figure is a ratio against a
 * reference measured in the same run:
 *
 * 1. HTTP — /take + /release pairs per second through the real daemon, versus a bare Bun.serve
 *    answering the same request shapes, and versus poolctl (the Go broker keypool replaces, from
 *    ../shared/peers/, skipped when absent) on the same number of keys. Each server runs in its own
 *    process; they alternate in rounds and the medians are compared. Targets: daemon/bare ≥ 0.6,
 *    daemon/poolctl ≥ 1.0.
 * 2. Store — in-process take+release pairs per second at 10 keys versus 100,000 keys, per rotation.
 *    Target: 100k/10 ≥ 0.8 (a take must stay O(log n) in pool size).
 *
 * Prints a table, then one JSON line with every figure. --cpu-prof-dir profiles the daemon process.
 * --breakdown adds two more HTTP targets to the rounds, to tell where the daemon's time goes:
 * the daemon with in-memory SQLite (no file I/O), and the real HTTP app over a do-nothing store.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Rotation } from "../src/config/types";
import { takeAndRelease } from "./_broker-load";
import { measureStore } from "./_broker-store";
import { closedLoop } from "./_load";
import { poolctlAvailable, startPoolctl } from "./_poolctl";
import { type ServerProcess, cpuProfileArgs } from "./_process";
import { printBanner, printTable, secondsSince } from "./_report";
import { BenchRun, parseBenchArgs } from "./_run";
import { median, quantile, rate, ratio, round2 } from "./_stats";

const HTTP_TARGET = 0.6;
const POOLCTL_TARGET = 1.0;
/** Keys in the HTTP targets' pools (bench/_broker-server.ts serves as many). */
const HTTP_KEYS = 100;
const STORE_TARGET = 0.8;
const STORE_SIZES = [10, 100_000] as const;
const ROTATIONS: Rotation[] = ["lru", "weighted", "round_robin"];
const SERVER_SCRIPT = new URL("./_broker-server.ts", import.meta.url).pathname;

type TargetKind = "daemon" | "bare" | "daemon-memory" | "api-stub" | "poolctl";

const { quick, only, profileDir, flags } = parseBenchArgs(process.argv.slice(2), {
  script: "bench/broker.ts",
  only: ["http", "store"],
  flags: ["breakdown"],
});
const breakdown = flags.has("breakdown");

const plan = quick
  ? {
      http: { rounds: 2, workers: 32, warmupMs: 500, durationMs: 1_000 },
      store: { pairs: 5_000, roundMs: 500, warmupPairs: 1_000, rounds: 3 },
    }
  : {
      http: { rounds: 3, workers: 32, warmupMs: 1_000, durationMs: 3_000 },
      store: { pairs: 20_000, roundMs: 1_500, warmupPairs: 2_000, rounds: 3 },
    };

using run = new BenchRun("keypool-bench-");

interface HttpFigures {
  bare: number;
  daemon: number;
  ratio: number;
  /** poolctl's pairs/s and the daemon's ratio to it, when its binary is present. */
  poolctl?: { pairsPerSec: number; ratio: number };
  /** With --breakdown: each extra target's pairs/s and its ratio to bare. */
  breakdown?: Partial<Record<TargetKind, { pairsPerSec: number; ratio: number }>>;
  rounds: Partial<Record<TargetKind, number[]>>;
  p50Ms: Partial<Record<TargetKind, number>>;
  p99Ms: Partial<Record<TargetKind, number>>;
  errors: number;
}

async function benchHttp(): Promise<HttpFigures> {
  const { rounds, ...load } = plan.http;
  const kinds: TargetKind[] = breakdown ? ["bare", "daemon", "daemon-memory", "api-stub"] : ["bare", "daemon"];
  if (poolctlAvailable()) kinds.push("poolctl");
  console.log(
    `HTTP /take + /release pairs/s — ${load.workers} workers, ${load.durationMs / 1000} s after ${load.warmupMs / 1000} s warmup, ${rounds} rounds each`,
  );
  const profileArgs = cpuProfileArgs(profileDir);
  const targets = new Map<TargetKind, ServerProcess>();
  const results = new Map<TargetKind, { rps: number[]; p50: number[]; p99: number[] }>();
  let errors = 0;
  try {
    for (const kind of kinds) {
      const dir = join(run.tempRoot, kind);
      mkdirSync(dir);
      targets.set(
        kind,
        kind === "poolctl"
          ? run.adopt(await startPoolctl(dir, { tokens: poolctlTokens() }))
          : await run.spawn(kind, SERVER_SCRIPT, [kind, dir], kind === "daemon" ? profileArgs : []),
      );
      results.set(kind, { rps: [], p50: [], p99: [] });
    }
    for (let round = 1; round <= rounds; round++) {
      for (const kind of kinds) {
        const url = targets.get(kind)!.url;
        const r = await closedLoop(takeAndRelease(url, kind === "poolctl" ? "id" : "lease"), load);
        const p50 = quantile(r.latencies, 0.5);
        const p99 = quantile(r.latencies, 0.99);
        const into = results.get(kind)!;
        into.rps.push(r.perSec);
        into.p50.push(p50);
        into.p99.push(p99);
        errors += r.errors;
        console.log(
          `  round ${round}  ${kind.padEnd(13)} ${rate(r.perSec).padStart(8)} pairs/s   p50 ${p50.toFixed(2)} ms   p99 ${p99.toFixed(2)} ms`,
        );
      }
    }
  } finally {
    for (const target of targets.values()) await run.stop(target);
  }
  const medianOf = (kind: TargetKind) => median(results.get(kind)!.rps);
  const bare = medianOf("bare");
  const perKind = <T>(f: (kind: TargetKind) => T) => Object.fromEntries(kinds.map((k) => [k, f(k)]));
  const extra = kinds.filter((k) => k !== "bare" && k !== "daemon" && k !== "poolctl");
  const poolctl = kinds.includes("poolctl") ? medianOf("poolctl") : undefined;
  return {
    bare: Math.round(bare),
    daemon: Math.round(medianOf("daemon")),
    ratio: ratio(medianOf("daemon"), bare),
    ...(poolctl !== undefined && {
      poolctl: { pairsPerSec: Math.round(poolctl), ratio: ratio(medianOf("daemon"), poolctl) },
    }),
    ...(extra.length > 0 && {
      breakdown: Object.fromEntries(
        extra.map((k) => [k, { pairsPerSec: Math.round(medianOf(k)), ratio: ratio(medianOf(k), bare) }]),
      ),
    }),
    rounds: perKind((k) => results.get(k)!.rps.map(Math.round)),
    p50Ms: perKind((k) => round2(median(results.get(k)!.p50))),
    p99Ms: perKind((k) => round2(median(results.get(k)!.p99))),
    errors,
  };
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

/** poolctl's tokens file for the same pool size as the daemon's (ids and tokens as bench/_keys.ts makes them). */
function poolctlTokens(): string[] {
  const width = String(HTTP_KEYS - 1).length;
  return Array.from(
    { length: HTTP_KEYS },
    (_, i) => `k${String(i).padStart(width, "0")},sk-bench-${String(i).padStart(width, "0")}`,
  );
}

function verdict(value: number, target: number): string {
  return value >= target ? "ok" : "BELOW";
}

function printResults(http: HttpFigures | undefined, store: Record<string, StoreFigures> | undefined): void {
  const rows: string[][] = [["measure", "reference", "subject", "ratio", "target", ""]];
  if (http) {
    rows.push([
      "http pairs/s daemon vs bare",
      rate(http.bare),
      rate(http.daemon),
      `${http.ratio.toFixed(2)}×`,
      `≥ ${HTTP_TARGET}`,
      verdict(http.ratio, HTTP_TARGET),
    ]);
    if (http.poolctl) {
      const { pairsPerSec, ratio: vsPoolctl } = http.poolctl;
      rows.push([
        "http pairs/s daemon vs poolctl",
        rate(pairsPerSec),
        rate(http.daemon),
        `${vsPoolctl.toFixed(2)}×`,
        `≥ ${POOLCTL_TARGET}`,
        verdict(vsPoolctl, POOLCTL_TARGET),
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
  printTable(rows);
}

printBanner("broker", quick);
const started = performance.now();
const http = only === "store" ? undefined : await benchHttp();
const store = only === "http" ? undefined : await benchStore();
printResults(http, store);
const summary = {
  bench: "broker",
  quick,
  bun: Bun.version,
  seconds: secondsSince(started),
  ...(http && { http }),
  ...(store && { store }),
};
console.log(JSON.stringify(summary));
