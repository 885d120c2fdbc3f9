/**
 * One OS process of scenario 9: `takers` concurrent loops take and release exclusive leases on a
 * shared SQLite file until the process has made `takes` takes. While a loop holds a key it owns
 * `<lockDir>/<key>` (created with O_EXCL) across an await, so the other loops of this process and
 * of the other process run meanwhile; a second holder anywhere fails to create the file.
 * Every error other than "no key free right now" is counted by message (SQLITE_BUSY would show here).
 *
 * Usage: bun _concurrent-hammer.ts DB LOCK_DIR TAKERS TAKES KEYS → {"takes","violations","waits","errors"}
 */
import { closeSync, openSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { systemClock } from "../../src/pool/clock";
import { DomainError } from "../../src/pool/errors";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";

const [dbPath, lockDir, takersArg, takesArg, keysArg] = process.argv.slice(2);
const target = Number(takesArg);
const store = new SqliteStore({ path: dbPath!, clock: systemClock });
const keys = Array.from({ length: Number(keysArg) }, (_, i) => ({
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

let takes = 0;
let violations = 0;
let waits = 0;
const errors: Record<string, number> = {};
const yieldTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

async function taker(): Promise<void> {
  while (takes < target) {
    let lease: Awaited<ReturnType<SqliteStore["take"]>>;
    try {
      lease = await store.take("default");
    } catch (error) {
      if (error instanceof DomainError && error.code === "NO_KEY_AVAILABLE") waits++;
      else errors[String((error as Error).message)] = (errors[String((error as Error).message)] ?? 0) + 1;
      // Back off a moment, as a real caller would (the daemon's TakeQueue polls): a tight retry loop
      // only measures how fast 50 spinning loops can starve each other.
      await Bun.sleep(1);
      continue;
    }
    takes++;
    const lockPath = join(lockDir!, lease.id);
    let fd: number | undefined;
    try {
      fd = openSync(lockPath, "wx");
    } catch {
      violations++;
    }
    await yieldTurn();
    if (fd !== undefined) {
      closeSync(fd);
      unlinkSync(lockPath);
    }
    try {
      await store.release({ lease: lease.lease }, { ok: true });
    } catch (error) {
      errors[String((error as Error).message)] = (errors[String((error as Error).message)] ?? 0) + 1;
    }
  }
}

await Promise.all(Array.from({ length: Number(takersArg) }, taker));
await store.close();
console.log(JSON.stringify({ takes, violations, waits, errors }));
