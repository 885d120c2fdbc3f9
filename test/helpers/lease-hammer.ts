/**
 * One OS process of the multi-process tests: takes and releases exclusive leases on a shared
 * store — a SQLite file, or a PostgreSQL database given as a postgres:// URL — as fast as it can,
 * with CONCURRENCY takers at once (default 1). While it holds a key it owns `<lockDir>/<key>`
 * (created with O_EXCL), so a second holder anywhere — this process or another — fails to create it.
 *
 * Usage: bun lease-hammer.ts DB_PATH|URL LOCK_DIR TAKES [CONCURRENCY]   → prints {"takes","violations","waits"}
 */
import { openSync, closeSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { systemClock } from "../../src/pool/clock";
import { DomainError } from "../../src/pool/errors";
import { PostgresStore } from "../../src/store/postgres/postgres-store";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";

const [dbPath, lockDir, takesArg, concurrencyArg] = process.argv.slice(2);
const target = Number(takesArg);
const store = /^postgres(ql)?:/.test(dbPath!)
  ? await PostgresStore.open({ url: dbPath!, clock: systemClock, maxConnections: 8 })
  : new SqliteStore({ path: dbPath!, clock: systemClock });
const keys = Array.from({ length: 4 }, (_, i) => ({
  id: `k${i}`,
  token: `sk-hammer-${i}-0000000000000000`,
  weight: 1,
}));
await store.syncPools([
  {
    settings: {
      name: "default",
      rotation: "lru",
      cooldownSec: 0,
      leaseTtlSec: 300,
      recheckIntervalSec: 300,
      maxConcurrency: 1,
    },
    keys,
  },
]);

let claimed = 0;
let takes = 0;
let violations = 0;
let waits = 0;
async function takeOne() {
  for (;;) {
    try {
      return await store.take("default");
    } catch (error) {
      if (!(error instanceof DomainError) || error.code !== "NO_KEY_AVAILABLE") throw error;
      waits++;
    }
  }
}
async function taker(): Promise<void> {
  // Each taker claims a take before making it, so the process makes exactly TAKES.
  while (claimed < target) {
    claimed++;
    const lease = await takeOne();
    takes++;
    const lockPath = join(lockDir!, lease.id);
    let fd: number | undefined;
    try {
      fd = openSync(lockPath, "wx");
    } catch {
      violations++;
    }
    if (fd !== undefined) {
      closeSync(fd);
      unlinkSync(lockPath);
    }
    await store.release({ lease: lease.lease }, { ok: true });
  }
}
await Promise.all(Array.from({ length: Number(concurrencyArg ?? 1) }, () => taker()));
await store.close();
console.log(JSON.stringify({ takes, violations, waits }));
