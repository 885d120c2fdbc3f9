/**
 * The 100-model run: in-process take+release pairs per second when every take names one of 100
 * models, against the same store taking without a model, measured in alternating rounds. The pool
 * carries what model-aware traffic leaves behind — a tenth of its (key, model) pairs resting — so a
 * take for a model has real pairs to skip.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { systemClock } from "../src/pool/clock";
import { SqliteStore } from "../src/store/sqlite/sqlite-store";
import { benchKeys } from "./_keys";
import { median } from "./_stats";

export const MODEL_COUNT = 100;
const KEY_COUNT = 100;
/** One pair in this many rests (1,000 of the 10,000 pairs of 100 keys and 100 models). */
const RESTING_EVERY = 10;

export interface ModelRunOptions {
  pairs: number;
  roundMs: number;
  warmupPairs: number;
  rounds: number;
}

export interface ModelRunResult {
  withoutModel: number;
  withModel: number;
  rounds: { withoutModel: number[]; withModel: number[] };
  restingPairs: number;
}

export const modelName = (i: number) => `model-${String(i % MODEL_COUNT).padStart(3, "0")}`;

export async function measureModels(dir: string, options: ModelRunOptions): Promise<ModelRunResult> {
  const path = join(dir, "models.sqlite");
  const store = new SqliteStore({ path, clock: systemClock });
  try {
    await store.syncPools([
      {
        settings: { name: "bench", rotation: "lru", cooldownSec: 0, leaseTtlSec: 300, recheckIntervalSec: 300 },
        keys: benchKeys(KEY_COUNT),
      },
    ]);
    let restingPairs = 0;
    const ids = benchKeys(KEY_COUNT).map((key) => key.id);
    for (const [k, id] of ids.entries()) {
      for (let m = 0; m < MODEL_COUNT; m++) {
        if ((k + m) % RESTING_EVERY !== 0) continue;
        // A long rest, so no pair comes back during the run.
        await store.release(
          { id, pool: "bench" },
          { ok: false, status: 429, model: modelName(m), retryAfterMs: 3600_000 },
        );
        restingPairs++;
      }
    }
    await pairs(store, options.warmupPairs, options.roundMs, false);
    await pairs(store, options.warmupPairs, options.roundMs, true);
    const rounds = { withoutModel: [] as number[], withModel: [] as number[] };
    for (let round = 0; round < options.rounds; round++) {
      rounds.withoutModel.push(await pairsPerSec(store, options, false));
      rounds.withModel.push(await pairsPerSec(store, options, true));
    }
    return { withoutModel: median(rounds.withoutModel), withModel: median(rounds.withModel), rounds, restingPairs };
  } finally {
    await store.close();
    for (const suffix of ["", "-wal", "-shm"]) rmSync(`${path}${suffix}`, { force: true });
  }
}

async function pairsPerSec(store: SqliteStore, options: ModelRunOptions, withModel: boolean): Promise<number> {
  const started = performance.now();
  const done = await pairs(store, options.pairs, options.roundMs, withModel);
  return done / ((performance.now() - started) / 1000);
}

async function pairs(store: SqliteStore, maxPairs: number, maxMs: number, withModel: boolean): Promise<number> {
  const deadline = performance.now() + maxMs;
  let done = 0;
  while (done < maxPairs && (done % 256 !== 0 || performance.now() < deadline)) {
    const model = withModel ? modelName(done) : undefined;
    const lease = await store.take("bench", { model });
    await store.release({ lease: lease.lease }, { ok: true, model });
    done++;
  }
  return done;
}
