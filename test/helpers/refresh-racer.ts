/**
 * One of the processes in the cross-process refresh race (test/health-refresh.test.ts).
 * argv: the SQLite file, then a JSON `{ pool, refresh, keys, id, staleToken }`.
 * Prints "ready" once its store is open, waits for a line on stdin, refreshes the key once,
 * prints the outcome as JSON and exits.
 */
import { poolSettingsOf } from "../../src/daemon/pool-settings";
import { refreshKey, refreshOwnerId } from "../../src/health/refresh";
import { systemClock } from "../../src/pool/clock";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";

const [dbPath, spec] = process.argv.slice(2);
const { pool, refresh, keys, id, staleToken } = JSON.parse(spec!);

const store = new SqliteStore({ path: dbPath!, clock: systemClock });
await store.syncPools([{ settings: poolSettingsOf(pool), keys }]);
console.log("ready");

for await (const _ of console) break;
const outcome = await refreshKey(
  { store, clock: systemClock, owner: refreshOwnerId() },
  { pool: pool.name, id, staleToken },
  refresh,
);
console.log(JSON.stringify(outcome));
await store.close();
