/**
 * One OS process of the multi-process test: takes and releases exclusive leases on a shared
 * SQLite file as fast as it can. While it holds a key it owns `<lockDir>/<key>` (created with
 * O_EXCL), so a second holder anywhere — this process or another — fails to create it.
 *
 * Usage: bun lease-hammer.ts DB_PATH LOCK_DIR TAKES   → prints {"takes","violations","waits"}
 */
import { openSync, closeSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { systemClock } from "../../src/pool/clock";
import { DomainError } from "../../src/pool/errors";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";

const [dbPath, lockDir, takesArg] = process.argv.slice(2);
const target = Number(takesArg);
const store = new SqliteStore({ path: dbPath!, clock: systemClock });
const keys = Array.from({ length: 4 }, (_, i) => ({ id: `k${i}`, token: `sk-hammer-${i}-0000000000000000`, weight: 1 }));
await store.syncPools([
  { settings: { name: "default", rotation: "lru", cooldownSec: 0, leaseTtlSec: 300, recheckIntervalSec: 300, maxConcurrency: 1 }, keys },
]);

let takes = 0;
let violations = 0;
let waits = 0;
while (takes < target) {
  let lease;
  try {
    lease = await store.take("default");
  } catch (error) {
    if (error instanceof DomainError && error.code === "NO_KEY_AVAILABLE") {
      waits++;
      continue;
    }
    throw error;
  }
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
await store.close();
console.log(JSON.stringify({ takes, violations, waits }));
