import { describe, expect, it } from "bun:test";
import { mkdirSync } from "node:fs";
import { tempDir } from "./helpers/temp-dir";

describe("two processes on one SQLite file", () => {
  it("never hand out one exclusive lease twice", async () => {
    using dir = tempDir();
    const lockDir = dir.file("locks");
    mkdirSync(lockDir);
    const db = dir.file("shared.db");
    const spawnHammer = () =>
      Bun.spawn([process.execPath, "test/helpers/lease-hammer.ts", db, lockDir, "3000"], {
        stdout: "pipe",
        stderr: "pipe",
      });
    const workers = [spawnHammer(), spawnHammer()];
    const results = await Promise.all(
      workers.map(async (worker) => {
        const [out, err, code] = await Promise.all([
          new Response(worker.stdout).text(),
          new Response(worker.stderr).text(),
          worker.exited,
        ]);
        expect({ code, err }).toEqual({ code: 0, err: "" });
        return JSON.parse(out) as { takes: number; violations: number; waits: number };
      }),
    );
    expect(results.map((r) => [r.takes, r.violations])).toEqual([
      [3000, 0],
      [3000, 0],
    ]);
  });
});
