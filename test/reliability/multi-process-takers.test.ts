/**
 * Scenario 9: two processes, each with many concurrent takers, on one SQLite file. No exclusive
 * lease may ever be held twice, and no SQLITE_BUSY (or any other store error) may reach a caller.
 * Default: 2 × 50 takers, 20,000 takes in all (~10 s here); KEYPOOL_RELIABILITY_FULL=1: 2 × 200
 * takers and 10⁶ takes in all (~10 min on 2 cores). (One taker per process is test/multi-process.test.ts.)
 */
import { describe, expect, it } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { systemClock } from "../../src/pool/clock";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import { tempDir } from "../helpers/temp-dir";
import { scaled } from "./_scale";

const TAKERS = scaled(50, 200);
const TAKES_PER_PROCESS = scaled(10_000, 500_000);
const KEYS = 16;
const HAMMER = join(import.meta.dir, "_concurrent-hammer.ts");

describe("scenario 9: two processes of concurrent takers on one SQLite file", () => {
  it(
    `never hands out an exclusive lease twice and never surfaces SQLITE_BUSY (2 × ${TAKERS} takers, ${2 * TAKES_PER_PROCESS} takes)`,
    async () => {
      using dir = tempDir();
      const lockDir = dir.file("locks");
      mkdirSync(lockDir);
      const spawn = () =>
        Bun.spawn(
          [
            process.execPath,
            HAMMER,
            dir.file("shared.db"),
            lockDir,
            String(TAKERS),
            String(TAKES_PER_PROCESS),
            String(KEYS),
          ],
          { stdout: "pipe", stderr: "pipe" },
        );
      const started = performance.now();
      const results = await Promise.all(
        [spawn(), spawn()].map(async (worker) => {
          const [out, err, code] = await Promise.all([
            new Response(worker.stdout).text(),
            new Response(worker.stderr).text(),
            worker.exited,
          ]);
          expect({ code, err }).toEqual({ code: 0, err: "" });
          return JSON.parse(out) as {
            takes: number;
            violations: number;
            waits: number;
            errors: Record<string, number>;
          };
        }),
      );
      const seconds = (performance.now() - started) / 1000;
      console.log(
        `2 × ${TAKERS} takers: ${results.map((r) => `${r.takes} takes, ${r.waits} waits`).join("; ")} in ${seconds.toFixed(1)} s`,
      );
      // A process may overshoot its target by the takes already in flight when it was reached.
      expect(results.every((r) => r.takes >= TAKES_PER_PROCESS && r.takes < TAKES_PER_PROCESS + TAKERS)).toBe(true);
      expect(results.map((r) => [r.violations, r.errors])).toEqual([
        [0, {}],
        [0, {}],
      ]);
    },
    scaled(120_000, 3_600_000),
  );

  it("opens a file another process is writing to in rollback mode: switching to WAL waits for the lock", async () => {
    using dir = tempDir();
    // The holder keeps its lock for a fixed 300 ms on purpose: the store opens synchronously, so the test
    // cannot signal it mid-open; the point is that opening waits out a lock of bounded length.
    // Another process (an older tool, or a keypool that has just created the file) holds a write
    // lock on a database not yet in WAL mode; SQLite answers the switch to WAL with SQLITE_BUSY at once.
    // The holder waits on locks too: its COMMIT needs the store's brief read lock (taken while it tries
    // the switch) gone, and without a busy timeout it failed whenever the two met.
    const hold = `const { Database } = require("bun:sqlite"); const db = new Database(process.argv[1], { create: true });
      db.exec("PRAGMA busy_timeout = 5000"); db.exec("CREATE TABLE t (x)"); db.exec("BEGIN IMMEDIATE"); db.exec("INSERT INTO t VALUES (1)");
      console.log("holding"); await Bun.sleep(300); db.exec("COMMIT"); db.close();`;
    const holder = Bun.spawn([process.execPath, "-e", hold, dir.file("busy.db")], {
      stdout: "pipe",
      stderr: "inherit",
    });
    const reader = holder.stdout.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("holding\n");
    const store = new SqliteStore({ path: dir.file("busy.db"), clock: systemClock });
    await store.syncPools([
      {
        settings: { name: "default", rotation: "lru", cooldownSec: 0, leaseTtlSec: 300, recheckIntervalSec: 300 },
        keys: [],
      },
    ]);
    await store.close();
    expect(await holder.exited).toBe(0);
  });
});
