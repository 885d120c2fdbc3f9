import { Database } from "bun:sqlite";
import type { CheckConfig, PoolConfig, RefreshConfig } from "../../src/config/types";
import { poolSettingsOf } from "../../src/daemon/pool-settings";
import { Checker } from "../../src/health/checker";
import { ManualClock } from "../../src/pool/clock";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import type { KeyInput } from "../../src/store/types";
import { tempDir } from "./temp-dir";

export interface HealthPool extends AsyncDisposable {
  store: SqliteStore;
  checker: Checker;
  clock: ManualClock;
  /** The pool as the checker reads it; tests may change its check between ticks. */
  pool: PoolConfig;
  dbPath: string;
  /** Stops the checker and closes the store (idempotent). */
  close(): Promise<void>;
  /** Opens a second store on the same file, as a restarted process would. */
  reopen(keys?: KeyInput[]): Promise<SqliteStore>;
  /** The store's key rows by id. */
  status(): Promise<Record<string, Awaited<ReturnType<SqliteStore["status"]>>[number]>>;
}

export interface HealthPoolOptions {
  keys: KeyInput[];
  check?: CheckConfig;
  refresh?: RefreshConfig;
  /** Overrides for the pool's other settings. */
  pool?: Partial<PoolConfig>;
  random?: () => number;
}

/** A pool on a fresh SQLite file, a manual clock and a checker whose timer is never started. */
export async function openHealthPool(options: HealthPoolOptions): Promise<HealthPool> {
  const dir = tempDir("keypool-health-");
  const dbPath = dir.file("state.db");
  const clock = new ManualClock();
  const pool: PoolConfig = {
    name: "default",
    keys: options.keys,
    rotation: "lru",
    cooldownSec: 0,
    recheckIntervalSec: 300,
    leaseTtlSec: 300,
    check: options.check,
    refresh: options.refresh,
    ...options.pool,
  };
  const random = options.random ?? (() => 0.5);
  const store = new SqliteStore({ path: dbPath, clock, random });
  await store.syncPools([{ settings: poolSettingsOf(pool), keys: options.keys }]);
  const checker = new Checker({ store, clock, pools: () => [pool] });
  const extra: SqliteStore[] = [];
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await checker.stop();
    await store.close();
  };
  return {
    store,
    checker,
    clock,
    pool,
    dbPath,
    close,
    async reopen(keys = options.keys) {
      const again = new SqliteStore({ path: dbPath, clock, random });
      extra.push(again);
      await again.syncPools([{ settings: poolSettingsOf(pool), keys }]);
      return again;
    },
    async status() {
      return Object.fromEntries((await store.status()).map((row) => [row.id, row]));
    },
    async [Symbol.asyncDispose]() {
      await close();
      for (const other of extra) await other.close().catch(() => {});
      dir[Symbol.dispose]();
    },
  };
}

/** SQLite's own consistency check on a closed database file. */
export function integrityOf(dbPath: string): string {
  const db = new Database(dbPath, { readonly: true });
  try {
    return (db.query("PRAGMA integrity_check").get() as { integrity_check: string }).integrity_check;
  } finally {
    db.close();
  }
}

/** A deterministic stand-in for Math.random (a small LCG): spread out, but the same every run. */
export function seededRandom(seed = 42): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}
