import { rmSync } from "node:fs";
import { join } from "node:path";
import type { Rotation } from "../src/config/types";
import { systemClock } from "../src/pool/clock";
import { SqliteStore } from "../src/store/sqlite/sqlite-store";
import { benchKeys } from "./_keys";
import { median } from "./_stats";

export interface StoreOptions {
  sizes: readonly number[];
  /** A round stops at this many pairs or after `roundMs`, whichever comes first. */
  pairs: number;
  roundMs: number;
  warmupPairs: number;
  rounds: number;
}

/** Pairs per second at each pool size: every round, per size, then the median over rounds. */
export interface StoreResult {
  perSize: Record<number, { median: number; rounds: number[] }>;
  setupMs: Record<number, number>;
}

/**
 * In-process take+release cost for one rotation at several pool sizes. The sizes are measured
 * in alternation, round after round, so a noisy neighbour hurts them alike.
 */
export async function measureStore(dir: string, rotation: Rotation, options: StoreOptions): Promise<StoreResult> {
  const stores = new Map<number, SqliteStore>();
  const setupMs: Record<number, number> = {};
  try {
    for (const size of options.sizes) {
      const started = performance.now();
      const store = new SqliteStore({ path: join(dir, `${rotation}-${size}.sqlite`), clock: systemClock });
      stores.set(size, store);
      await store.syncPools([
        {
          settings: { name: "bench", rotation, cooldownSec: 0, leaseTtlSec: 300, recheckIntervalSec: 300 },
          keys: benchKeys(size),
        },
      ]);
      setupMs[size] = Math.round(performance.now() - started);
      await pairs(store, options.warmupPairs, options.roundMs);
    }
    const rounds = new Map<number, number[]>(options.sizes.map((size) => [size, []]));
    for (let round = 0; round < options.rounds; round++) {
      for (const size of options.sizes)
        rounds.get(size)!.push(await pairsPerSec(stores.get(size)!, options.pairs, options.roundMs));
    }
    const perSize: StoreResult["perSize"] = {};
    for (const [size, values] of rounds) perSize[size] = { median: median(values), rounds: values };
    return { perSize, setupMs };
  } finally {
    for (const store of stores.values()) await store.close();
    for (const size of options.sizes) {
      for (const suffix of ["", "-wal", "-shm"])
        rmSync(join(dir, `${rotation}-${size}.sqlite${suffix}`), { force: true });
    }
  }
}

async function pairsPerSec(store: SqliteStore, maxPairs: number, maxMs: number): Promise<number> {
  const started = performance.now();
  const done = await pairs(store, maxPairs, maxMs);
  return done / ((performance.now() - started) / 1000);
}

// The time cap keeps a slow store from stretching the run; a fast one still does every pair.
async function pairs(store: SqliteStore, maxPairs: number, maxMs: number): Promise<number> {
  const deadline = performance.now() + maxMs;
  let done = 0;
  while (done < maxPairs && (done % 256 !== 0 || performance.now() < deadline)) {
    const lease = await store.take("bench");
    await store.release({ lease: lease.lease }, { ok: true });
    done++;
  }
  return done;
}
