/**
 * One OS process of the checkpoint kill -9 test: takes and releases keys on a file-backed store while
 * its checkpointer's worker copies the log into the database file, until it is killed. It prints
 * `checkpointed` once the worker has moved frames, so the killer knows both threads are at work.
 *
 * Usage: bun checkpoint-writer.ts STATE_FILE
 */
import { systemClock } from "../../src/pool/clock";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import { keys, settings } from "../store/contract/_harness";

const store = new SqliteStore({ path: process.argv[2]!, clock: systemClock, checkpoints: { everyMs: 0 } });
// Exclusive keys: every take and release is a transaction of its own, so the log keeps growing.
await store.syncPools([{ settings: settings({ maxConcurrency: 1 }), keys: keys(50) }]);
let looking = false;
let announced = false;
for (;;) {
  const lease = await store.take("default");
  await store.release({ lease: lease.lease }, { ok: true });
  if (looking) continue;
  // Not awaited: the worker checkpoints while this thread goes on committing.
  looking = true;
  void store.checkpointer!.tick().then((report) => {
    looking = false;
    if (!announced && report.checkpointed > 0) {
      announced = true;
      console.log("checkpointed");
    }
  });
}
