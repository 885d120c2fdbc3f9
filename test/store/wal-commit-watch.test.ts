import { Database } from "bun:sqlite";
import { describe, expect, it } from "bun:test";
import { symlinkSync } from "node:fs";
import { WalCommitWatch } from "../../src/store/sqlite/_wal-commit-watch";
import { tempDir } from "../helpers/temp-dir";

/**
 * The wal-index header watch (src/store/sqlite/_wal-commit-watch.ts): it may say "moved" when nothing
 * changed, but must never say "unmoved" after a commit — by another connection, another process, or
 * across the log starting over.
 */

function walFile(path: string): Database {
  const db = new Database(path, { create: true, strict: true });
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("CREATE TABLE IF NOT EXISTS t (x INTEGER)");
  return db;
}

/** Commits one row to `path` from another process: its own mapping, its own locks. */
async function commitFromAnotherProcess(path: string): Promise<void> {
  const script = `const { Database } = require("bun:sqlite");
    const db = new Database(${JSON.stringify(path)});
    db.exec("PRAGMA busy_timeout = 5000");
    db.exec("INSERT INTO t VALUES (1)");
    db.close();`;
  const proc = Bun.spawn([process.execPath, "-e", script], { stdout: "ignore", stderr: "pipe" });
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
}

describe.skipIf(process.platform === "win32")("WalCommitWatch", () => {
  it("says moved at its first look, then only after a commit", () => {
    using dir = tempDir();
    const db = walFile(dir.file("state.db"));
    const other = new Database(dir.file("state.db"));
    const watch = WalCommitWatch.watch(dir.file("state.db"));
    expect(watch).toBeDefined();
    expect(watch!.moved()).toBe(true);
    for (let i = 0; i < 3; i++) expect(watch!.moved()).toBe(false);
    // Reads commit nothing.
    other.query("SELECT count(*) FROM t").get();
    expect(watch!.moved()).toBe(false);
    other.exec("INSERT INTO t VALUES (1)");
    expect(watch!.moved()).toBe(true);
    expect(watch!.moved()).toBe(false);
    // Its own connection's commits move it too: the caller's data_version sorts those out.
    db.exec("INSERT INTO t VALUES (2)");
    expect(watch!.moved()).toBe(true);
    other.close();
    db.close();
  });

  it("sees every commit of another process", async () => {
    using dir = tempDir();
    const db = walFile(dir.file("state.db"));
    const watch = WalCommitWatch.watch(dir.file("state.db"))!;
    watch.moved();
    for (let i = 0; i < 3; i++) {
      await commitFromAnotherProcess(dir.file("state.db"));
      expect(watch.moved()).toBe(true);
      expect(watch.moved()).toBe(false);
    }
    expect((db.query("SELECT count(*) AS n FROM t").get() as { n: number }).n).toBe(3);
    db.close();
  });

  it("sees a commit after the log was checkpointed and started over", () => {
    using dir = tempDir();
    const db = walFile(dir.file("state.db"));
    const other = new Database(dir.file("state.db"));
    const watch = WalCommitWatch.watch(dir.file("state.db"))!;
    for (const mode of ["PASSIVE", "RESTART", "TRUNCATE"]) {
      other.exec("INSERT INTO t VALUES (1)");
      watch.moved();
      other.query(`PRAGMA wal_checkpoint(${mode})`).get();
      watch.moved();
      other.exec("INSERT INTO t VALUES (2)");
      expect(watch.moved()).toBe(true);
    }
    other.close();
    db.close();
  });

  it("follows a state file's symbolic link to the -shm SQLite uses", () => {
    using dir = tempDir();
    const db = walFile(dir.file("real.db"));
    symlinkSync(dir.file("real.db"), dir.file("link.db"));
    const watch = WalCommitWatch.watch(dir.file("link.db"))!;
    expect(watch).toBeDefined();
    watch.moved();
    db.exec("INSERT INTO t VALUES (1)");
    expect(watch.moved()).toBe(true);
    db.close();
  });

  it("declines a file without a wal-index: the caller asks data_version every time", () => {
    using dir = tempDir();
    const db = new Database(dir.file("rollback.db"), { create: true });
    db.exec("PRAGMA journal_mode = DELETE");
    db.exec("CREATE TABLE t (x INTEGER)");
    expect(WalCommitWatch.watch(dir.file("rollback.db"))).toBeUndefined();
    expect(WalCommitWatch.watch(dir.file("missing.db"))).toBeUndefined();
    db.close();
  });
});
