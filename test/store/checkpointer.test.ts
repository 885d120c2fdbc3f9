import { describe, expect, it } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, renameSync, statSync } from "node:fs";
import { join } from "node:path";
import { ManualClock } from "../../src/pool/clock";
import type { CheckpointerOptions } from "../../src/store/sqlite/_checkpointer";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import { tempDir } from "../helpers/temp-dir";
import { keys, settings, use } from "./contract/_harness";

const WRITER = join(import.meta.dir, "../helpers/checkpoint-writer.ts");
// SQLite's automatic checkpoint runs once the log passes this many pages; the store's connection must not.
const AUTOCHECKPOINT_PAGES = 1000;

const NEVER = 1 << 30;

// Exclusive keys (max_concurrency) are taken and released in transactions, so every pair commits; other
// keys' takes are decided in memory and would leave the log nearly empty.
async function openStore(path: string, limits: Omit<CheckpointerOptions, "everyMs"> = {}, n = 20) {
  const store = new SqliteStore({ path, clock: new ManualClock(), checkpoints: { everyMs: 0, quietMs: 0, ...limits } });
  await store.syncPools([{ settings: settings({ maxConcurrency: 1 }), keys: keys(n) }]);
  return store;
}

/** Commits of the store's own connection, one take and one release each time. */
async function commit(store: SqliteStore, pairs: number): Promise<void> {
  for (let i = 0; i < pairs; i++) await use(store);
}

// The last connection to close deletes the log.
const walBytes = (path: string) => (existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0);

describe("the checkpointer", () => {
  it("checkpoints on its own thread, and the store's connection never does", async () => {
    using dir = tempDir();
    const path = dir.file("keypool.db");
    const store = await openStore(path, {
      copyEveryMs: NEVER,
      restartAboveBytes: NEVER,
      truncateAboveBytes: NEVER,
    });
    await commit(store, 800);
    const first = await store.checkpointer!.tick();
    // Every frame since the file opened is still in the log: nobody restarted it, though it passed
    // the point where SQLite's own checkpoint would have run inside one of those commits.
    expect(first).toMatchObject({ mode: "passive", busy: false });
    expect(first.walFrames).toBeGreaterThan(AUTOCHECKPOINT_PAGES);
    expect(first.checkpointed).toBe(first.walFrames);
    const size = walBytes(path);

    // While writes go on, copying waits for copyEveryMs; it runs at the first quiet look.
    await commit(store, 1);
    expect(await store.checkpointer!.tick()).toMatchObject({ mode: "none" });
    const second = await store.checkpointer!.tick();
    expect(second).toMatchObject({ mode: "passive", busy: false });
    // Everything had been copied, so the next commit started the log over from its beginning.
    expect(second.walFrames).toBeLessThan(first.walFrames / 10);
    expect(second.checkpointed).toBe(second.walFrames);
    expect(walBytes(path)).toBe(size);
    expect(await store.checkpointer!.tick()).toMatchObject({ mode: "none" });
    await store.close();
  });

  it("does not take a look between two flushes for a pause: copying waits for quietMs without commits", async () => {
    using dir = tempDir();
    const path = dir.file("keypool.db");
    const store = await openStore(path, {
      copyEveryMs: NEVER,
      quietMs: NEVER,
      restartAboveBytes: NEVER,
      truncateAboveBytes: 0,
    });
    await commit(store, 20);
    // The first look copies whatever it finds.
    expect(await store.checkpointer!.tick()).toMatchObject({ mode: "passive" });
    await commit(store, 20);
    expect(await store.checkpointer!.tick()).toMatchObject({ mode: "none" });
    // Nothing new since the last look, but not for quietMs: neither a copy nor a truncation yet.
    expect(await store.checkpointer!.tick()).toMatchObject({ mode: "none" });
    expect(walBytes(path)).toBeGreaterThan(0);
    await store.close();
  });

  it("writes the hot path's flushes on its own connection, and checkpoints them like any other commit", async () => {
    using dir = tempDir();
    const path = dir.file("keypool.db");
    const store = new SqliteStore({
      path,
      clock: new ManualClock(),
      checkpoints: { everyMs: 0, quietMs: 0, copyEveryMs: NEVER, restartAboveBytes: NEVER },
    });
    await store.syncPools([{ settings: settings(), keys: keys(3) }]);
    await store.checkpointer!.tick();
    await store.checkpointer!.tick();
    for (let i = 0; i < 3; i++) await use(store);
    await store.flushInBackground();
    // The worker's own commit does not move its connection's data_version; it still counts as new.
    expect(await store.checkpointer!.tick()).toMatchObject({ mode: "none" });
    const copied = await store.checkpointer!.tick();
    expect(copied).toMatchObject({ mode: "passive", busy: false });
    expect(copied.checkpointed).toBeGreaterThan(0);
    await store.close();
  });

  it("starts a long log over even while writes go on", async () => {
    using dir = tempDir();
    const path = dir.file("keypool.db");
    const store = await openStore(path, {
      copyEveryMs: 0,
      restartAboveBytes: 64 * 1024,
      truncateAboveBytes: NEVER,
    });
    await commit(store, 50);
    expect(await store.checkpointer!.tick()).toMatchObject({ mode: "restart", busy: false });
    await commit(store, 1);
    // Started over: the one commit since is all the log holds.
    const after = await store.checkpointer!.tick();
    expect(after.walFrames).toBeLessThan(20);
    await store.close();
  });

  it("truncates a large log once writes pause", async () => {
    using dir = tempDir();
    const path = dir.file("keypool.db");
    const limits = { copyEveryMs: 0, restartAboveBytes: NEVER, truncateAboveBytes: 64 * 1024 };
    const store = await openStore(path, limits, 2000);
    expect(walBytes(path)).toBeGreaterThan(64 * 1024);
    expect(await store.checkpointer!.tick()).toMatchObject({ mode: "passive", busy: false });
    expect(walBytes(path)).toBeGreaterThan(64 * 1024);
    expect(await store.checkpointer!.tick()).toMatchObject({ mode: "truncate", busy: false });
    expect(walBytes(path)).toBe(0);
    expect(await store.checkpointer!.tick()).toMatchObject({ mode: "none" });
    await store.close();
  });

  it("stops with the store, whose close still leaves the log empty", async () => {
    using dir = tempDir();
    const path = dir.file("keypool.db");
    const store = await openStore(path);
    await commit(store, 5);
    await store.checkpointer!.tick();
    await store.close();
    expect(store.checkpointer!.tick()).rejects.toThrow("the checkpointer has stopped");
    expect(walBytes(path)).toBe(0);
  });

  it("copies nothing into a state file that is no longer at its path", async () => {
    using dir = tempDir();
    const path = dir.file("keypool.db");
    const store = await openStore(path);
    await store.checkpointer!.tick();
    await commit(store, 5);
    renameSync(path, dir.file("moved.db"));
    renameSync(`${path}-wal`, dir.file("moved.db-wal"));
    expect(store.checkpointer!.tick()).rejects.toThrow("no checkpoint into a lost state file");
    expect(store.checkpointer!.tick()).rejects.toThrow("the checkpointer has stopped");
    await store.close();
  });

  it("has nothing to do for an in-memory store", () => {
    expect(new SqliteStore({ path: ":memory:", clock: new ManualClock() }).checkpointer).toBeUndefined();
  });

  it("leaves a file that opens whole after kill -9 mid-checkpoint", async () => {
    using dir = tempDir();
    const path = dir.file("keypool.db");
    const proc = Bun.spawn([process.execPath, WRITER, path], { stdout: "pipe", stderr: "inherit" });
    const reader = proc.stdout.getReader();
    let said = "";
    while (!said.includes("checkpointed")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the writer exited (${await proc.exited}) before checkpointing`);
      said += new TextDecoder().decode(value);
    }
    proc.kill("SIGKILL");
    expect(await proc.exited).not.toBe(0);

    const store = await openStore(path);
    await commit(store, 3);
    await store.close();
    const db = new Database(path, { readonly: true });
    expect(db.query("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
    db.close();
  });
});
