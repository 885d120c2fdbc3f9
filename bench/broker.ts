/**
 * Broker benchmark: `bun run bench:broker [--quick] [--only=http|store] [--cpu-prof-dir=DIR]`
 *
 * Shared, noisy machines make absolute numbers meaningless, so every figure is a ratio against a
 * reference measured in the same run:
 *
 * 1. HTTP — /take + /release pairs per second through the real daemon, versus a bare Bun.serve
 *    answering the same request shapes. Each server runs in its own process; the two alternate
 *    in rounds and the medians are compared. Target: daemon/bare ≥ 0.6.
 * 2. Store — in-process take+release pairs per second at 10 keys versus 100,000 keys, per rotation.
 *    Target: 100k/10 ≥ 0.8 (a take must stay O(log n) in pool size).
 *
 * Prints a table, then one JSON line with every figure. --cpu-prof-dir profiles the daemon process.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Rotation } from "../src/config/types";
import { type RunningTarget, type TargetKind, runLoad, spawnTarget, stopTarget } from "./_http";
import { median, rate, ratio } from "./_stats";
import { measureStore } from "./_store";

const HTTP_TARGET = 0.6;
const STORE_TARGET = 0.8;
const STORE_SIZES = [10, 100_000] as const;
const ROTATIONS: Rotation[] = ["lru", "weighted", "round_robin"];

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const only = args.find((a) => a.startsWith("--only="))?.slice("--only=".length);
const profileDir = args.find((a) => a.startsWith("--cpu-prof-dir="))?.slice("--cpu-prof-dir=".length);
const unknown = args.filter((a) => a !== "--quick" && !a.startsWith("--only=") && !a.startsWith("--cpu-prof-dir="));
if (unknown.length > 0 || (only !== undefined && only !== "http" && only !== "store")) {
  console.error(`unknown arguments: ${args.join(" ")}\nusage: bun bench/broker.ts [--quick] [--only=http|store] [--cpu-prof-dir=DIR]`);
  process.exit(2);
}

const plan = quick
  ? { http: { rounds: 2, workers: 32, warmupMs: 500, durationMs: 1_000 }, store: { pairs: 5_000, warmupPairs: 1_000, rounds: 3 } }
  : { http: { rounds: 3, workers: 32, warmupMs: 1_000, durationMs: 3_000 }, store: { pairs: 20_000, warmupPairs: 5_000, rounds: 3 } };

// Everything this run creates, so Ctrl-C (or a crash) leaves nothing behind.
const tempRoot = mkdtempSync(join(tmpdir(), "keypool-bench-"));
const children = new Set<RunningTarget>();
function cleanUp(): void {
  for (const child of children) child.process.kill("SIGKILL");
  children.clear();
  rmSync(tempRoot, { recursive: true, force: true });
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping servers and removing ${tempRoot}`);
    cleanUp();
    process.exit(130);
  });
}

interface HttpFigures {
  bare: number;
  daemon: number;
  ratio: number;
  rounds: Record<TargetKind, number[]>;
  p50Ms: Record<TargetKind, number>;
  p99Ms: Record<TargetKind, number>;
  errors: number;
}

async function benchHttp(): Promise<HttpFigures> {
  const { rounds, ...load } = plan.http;
  console.log(`HTTP /take + /release pairs/s — ${load.workers} workers, ${load.durationMs / 1000} s after ${load.warmupMs / 1000} s warmup, ${rounds} rounds each`);
  const profileArgs = profileDir
    ? ["--cpu-prof", "--cpu-prof-md", `--cpu-prof-dir=${resolve(profileDir)}`]
    : [];
  if (profileDir) mkdirSync(resolve(profileDir), { recursive: true });
  const targets = {} as Record<TargetKind, RunningTarget>;
  for (const kind of ["bare", "daemon"] as const) {
    const dir = join(tempRoot, kind);
    mkdirSync(dir);
    targets[kind] = await spawnTarget(kind, dir, kind === "daemon" ? profileArgs : []);
    children.add(targets[kind]);
  }
  const results: Record<TargetKind, { rps: number[]; p50: number[]; p99: number[] }> = {
    bare: { rps: [], p50: [], p99: [] },
    daemon: { rps: [], p50: [], p99: [] },
  };
  let errors = 0;
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const kind of ["bare", "daemon"] as const) {
        const r = await runLoad(targets[kind].url, load);
        results[kind].rps.push(r.pairsPerSec);
        results[kind].p50.push(r.p50Ms);
        results[kind].p99.push(r.p99Ms);
        errors += r.errors;
        console.log(`  round ${round}  ${kind.padEnd(6)} ${rate(r.pairsPerSec).padStart(8)} pairs/s   p50 ${r.p50Ms.toFixed(2)} ms   p99 ${r.p99Ms.toFixed(2)} ms`);
      }
    }
  } finally {
    for (const target of Object.values(targets)) {
      await stopTarget(target);
      children.delete(target);
    }
  }
  const bare = median(results.bare.rps);
  const daemon = median(results.daemon.rps);
  const round2 = (n: number) => Math.round(n * 100) / 100;
  return {
    bare: Math.round(bare),
    daemon: Math.round(daemon),
    ratio: ratio(daemon, bare),
    rounds: { bare: results.bare.rps.map(Math.round), daemon: results.daemon.rps.map(Math.round) },
    p50Ms: { bare: round2(median(results.bare.p50)), daemon: round2(median(results.daemon.p50)) },
    p99Ms: { bare: round2(median(results.bare.p99)), daemon: round2(median(results.daemon.p99)) },
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
  const { pairs, warmupPairs, rounds } = plan.store;
  console.log(`\nStore take+release pairs/s in-process — ${rate(pairs)} pairs after ${rate(warmupPairs)} warmup, median of ${rounds} rounds`);
  const dir = join(tempRoot, "store");
  mkdirSync(dir);
  const figures: Record<string, StoreFigures> = {};
  for (const rotation of ROTATIONS) {
    const r = await measureStore(dir, rotation, { sizes: STORE_SIZES, pairs, warmupPairs, rounds });
    const small = r.perSize[10]!.median;
    const large = r.perSize[100_000]!.median;
    figures[rotation] = {
      k10: Math.round(small),
      k100000: Math.round(large),
      ratio: ratio(large, small),
      rounds: Object.fromEntries(STORE_SIZES.map((s) => [String(s), r.perSize[s]!.rounds.map(Math.round)])),
      setupMs: Object.fromEntries(STORE_SIZES.map((s) => [String(s), r.setupMs[s]!])),
    };
    console.log(`  ${rotation.padEnd(12)} 10 keys ${rate(small).padStart(8)}   100k keys ${rate(large).padStart(8)}   (100k setup ${r.setupMs[100_000]} ms)`);
  }
  return figures;
}

function verdict(value: number, target: number): string {
  return value >= target ? "ok" : "BELOW";
}

function printTable(http: HttpFigures | undefined, store: Record<string, StoreFigures> | undefined): void {
  const rows: string[][] = [["measure", "reference", "subject", "ratio", "target", ""]];
  if (http) {
    rows.push(["http pairs/s daemon vs bare", rate(http.bare), rate(http.daemon), `${http.ratio.toFixed(2)}×`, `≥ ${HTTP_TARGET}`, verdict(http.ratio, HTTP_TARGET)]);
  }
  for (const [rotation, f] of Object.entries(store ?? {})) {
    rows.push([`store ${rotation} 100k vs 10 keys`, rate(f.k10), rate(f.k100000), `${f.ratio.toFixed(2)}×`, `≥ ${STORE_TARGET}`, verdict(f.ratio, STORE_TARGET)]);
  }
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => row[col]!.length)));
  console.log("");
  for (const row of rows) {
    console.log(row.map((cell, col) => (col === 0 || col === 5 ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!))).join("  ").trimEnd());
  }
}

try {
  console.log(`keypool broker bench${quick ? " (quick)" : ""} — bun ${Bun.version}, ${navigator.hardwareConcurrency} CPUs\n`);
  const started = performance.now();
  const http = only === "store" ? undefined : await benchHttp();
  const store = only === "http" ? undefined : await benchStore();
  printTable(http, store);
  const summary = {
    bench: "broker",
    quick,
    bun: Bun.version,
    seconds: Math.round((performance.now() - started) / 100) / 10,
    ...(http && { http }),
    ...(store && { store }),
  };
  console.log(JSON.stringify(summary));
} finally {
  cleanUp();
}
