import { describe, expect, it } from "bun:test";
import { ManualClock } from "../../src/pool/clock";
import { PostgresStore } from "../../src/store/postgres/postgres-store";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import { createTokenCipher, parseMasterKey } from "../../src/store/token-cipher";
import { POSTGRES_URL, announceSkip, freshSchema } from "../helpers/postgres";
import { runKeypool } from "../helpers/run-keypool";
import { tempDir } from "../helpers/temp-dir";
import { keys, settings } from "./contract/_harness";

announceSkip("test/store/postgres-migrate.test.ts");

describe.skipIf(!POSTGRES_URL)("keypool store migrate --from sqlite:FILE --to postgres:URL", () => {
  it("copies every pool's state: health, rests, ladders, counters, leases, events, usage and sessions", async () => {
    await using schema = await freshSchema();
    using dir = tempDir();
    const file = dir.file("keypool.db");
    const clock = new ManualClock();
    const cipher = createTokenCipher(parseMasterKey("33".repeat(32)), "test key");
    const pools = [
      { settings: settings({ cooldownSec: 0 }), keys: keys(3, { group: (i) => (i < 2 ? "acme" : undefined) }) },
      { settings: settings({ name: "other", rotation: "round_robin" }), keys: keys(2) },
    ];
    const source = new SqliteStore({ path: file, clock, random: () => 0, cipher });
    await source.syncPools(pools);
    await source.release({ id: "k0", pool: "default" }, { ok: false, status: 429, usage: { input: 10, output: 5 } });
    await source.release({ id: "k2", pool: "default" }, { ok: false, status: 401 });
    await source.take("other", { session: "s1" });
    const held = await source.take("other");
    await source.addKey("other", { id: "api", token: "sk-api-0000000000000000000000", weight: 2 });
    const before = {
      status: await source.status(),
      events: await source.events({ limit: 100 }),
      usage: await source.usage({ window: "all" }),
    };
    await source.close();

    const run = await runKeypool(["store", "migrate", "--from", `sqlite:${file}`, "--to", `postgres:${schema.url}`]);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
    expect(run.stdout).toContain("default: 3 keys, 0 open leases, 3 events, 2 usage rows, 0 sessions");
    expect(run.stdout).not.toContain("search_path");

    const target = await PostgresStore.open({ url: schema.url, clock, random: () => 0, cipher });
    try {
      await target.syncPools(pools);
      expect({
        status: await target.status(),
        events: await target.events({ limit: 100 }),
        usage: await target.usage({ window: "all" }),
      }).toEqual(before);
      // The open lease came along: it can be released against the new store.
      expect((await target.release({ lease: held.lease }, { ok: true })).id).toBe(held.id);
      expect((await target.take("other", { session: "s1" })).id).toBe(
        before.status.find((k) => k.pool === "other" && k.sessions === 1)!.id,
      );
    } finally {
      await target.close();
    }
  });

  it("says what to write when an argument is not a store", async () => {
    const run = await runKeypool(["store", "migrate", "--from", "keypool.db", "--to", "postgres:x"]);
    expect([run.code, run.stderr.trim()]).toEqual([
      2,
      `--from: expected sqlite:FILE (e.g. sqlite:./keypool.db), got "keypool.db"`,
    ]);
  });
});
