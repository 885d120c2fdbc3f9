import { Database } from "bun:sqlite";
import { describe, expect, it } from "bun:test";
import { symlinkSync } from "node:fs";
import { WalIndexHeader } from "../src/store/sqlite/_wal-index-header";
import { tempDir } from "./helpers/temp-dir";

/** A state file in WAL mode with a table, and a second connection to it. */
function walFile(dir: ReturnType<typeof tempDir>) {
  const path = dir.file("state.db");
  const own = new Database(path, { create: true });
  own.exec("PRAGMA journal_mode = WAL");
  own.exec("CREATE TABLE t (x)");
  const other = new Database(path);
  return { path, own, other };
}

describe("the WAL-index header as a commit counter", () => {
  it("moves once for each commit by another connection, and stays put without one", () => {
    using dir = tempDir();
    const { path, own, other } = walFile(dir);
    const header = WalIndexHeader.open(path)!;
    expect(header).toBeDefined();
    const start = header.commits();
    expect(header.commits()).toBe(start);
    other.exec("INSERT INTO t VALUES (1)");
    const afterOne = header.commits();
    expect(afterOne).not.toBe(start);
    expect(header.commits()).toBe(afterOne);
    // A read changes nothing.
    other.query("SELECT COUNT(*) FROM t").get();
    expect(header.commits()).toBe(afterOne);
    // This connection's own commits move it too (data_version would not): a spare re-read, never a miss.
    own.exec("INSERT INTO t VALUES (2)");
    expect(header.commits()).not.toBe(afterOne);
    other.close();
    own.close();
  });

  it("sees commits made through a checkpoint that started the log over", () => {
    using dir = tempDir();
    const { path, own, other } = walFile(dir);
    const header = WalIndexHeader.open(path)!;
    other.exec("INSERT INTO t VALUES (1)");
    other.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    const afterCheckpoint = header.commits();
    other.exec("INSERT INTO t VALUES (2)");
    expect(header.commits()).not.toBe(afterCheckpoint);
    other.close();
    own.close();
  });

  it("finds the index beside the file a symbolic link points to", () => {
    using dir = tempDir();
    const { path, own, other } = walFile(dir);
    const link = dir.file("link.db");
    symlinkSync(path, link);
    const header = WalIndexHeader.open(link)!;
    const start = header.commits();
    other.exec("INSERT INTO t VALUES (1)");
    expect(header.commits()).not.toBe(start);
    other.close();
    own.close();
  });

  it("is undefined where there is no index (not in WAL mode): the store asks SQLite then", () => {
    using dir = tempDir();
    const db = new Database(dir.file("rollback.db"), { create: true });
    db.exec("CREATE TABLE t (x)");
    expect(WalIndexHeader.open(dir.file("rollback.db"))).toBeUndefined();
    db.close();
  });
});
