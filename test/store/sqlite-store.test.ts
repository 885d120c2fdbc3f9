import { describe, expect, it } from "bun:test";
import type { Database } from "bun:sqlite";
import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import type { Rotation } from "../../src/config/types";
import { ManualClock } from "../../src/pool/clock";
import { MAX_EVENTS } from "../../src/store/event-log";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import type { PoolStore } from "../../src/store/types";
import { tempDir } from "../helpers/temp-dir";
import { keys, settings } from "./contract/_harness";
import type { MakeBacking } from "./contract/_harness";
import { describeStoreContract } from "./contract/describe-store-contract";

// Every test gets a file of its own; stores opened on it share it like processes do.
const sqliteBacking: MakeBacking = async () => {
  const dir = tempDir();
  const stores: PoolStore[] = [];
  return {
    async open(options) {
      const store = new SqliteStore({ path: dir.file("keypool.db"), ...options });
      stores.push(store);
      return store;
    },
    async [Symbol.asyncDispose]() {
      for (const store of stores) await store.close().catch(() => {});
      dir[Symbol.dispose]();
    },
  };
};
describeStoreContract("SqliteStore", sqliteBacking);

async function openMemoryStore(pool = settings(), n = 3) {
  const store = new SqliteStore({ path: ":memory:", clock: new ManualClock(), random: () => 0 });
  await store.syncPools([{ settings: pool, keys: keys(n) }]);
  return store;
}

function dbOf(store: SqliteStore): Database {
  return (store as unknown as { db: Database }).db;
}

describe("SqliteStore internals", () => {
  it.each(["lru", "round_robin", "random", "weighted"] as Rotation[])(
    "walks the pick index instead of scanning (%s)",
    async (rotation) => {
      const store = await openMemoryStore(settings({ rotation }));
      const plan = dbOf(store)
        .prepare(`EXPLAIN QUERY PLAN SELECT * FROM keys WHERE pool = 'default' AND takeable = 1 AND rank >= ?2 AND ready_at <= ?1
                AND (max_concurrency IS NULL OR in_flight < max_concurrency) ORDER BY rank LIMIT 1`)
        .all(0, 0) as Array<{ detail: string }>;
      expect(plan.map((p) => p.detail)).toEqual([
        "SEARCH keys USING INDEX keys_pick (pool=? AND takeable=? AND rank>?)",
      ]);
    },
  );

  it("creates the database file with mode 0600", async () => {
    using dir = tempDir();
    const path = dir.file("state/keypool.db");
    const store = new SqliteStore({ path, clock: new ManualClock() });
    await store.close();
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it("refuses a state_file that is some other file, naming it, and leaves that file as it was", () => {
    using dir = tempDir();
    const path = dir.file("tokens.txt");
    writeFileSync(path, "a,sk-not-a-database-aaaaaaaaaaaa\n", { mode: 0o644 });
    chmodSync(path, 0o644);
    expect(() => new SqliteStore({ path, clock: new ManualClock() })).toThrow(
      `state_file: ${path} is not a SQLite database`,
    );
    expect([statSync(path).mode & 0o777, readFileSync(path, "utf8")]).toEqual([
      0o644,
      "a,sk-not-a-database-aaaaaaaaaaaa\n",
    ]);
  });

  it(`keeps only the latest ${MAX_EVENTS} transitions`, async () => {
    const store = await openMemoryStore(settings(), 1);
    // Submitted together, so they share one transaction: the log is pruned as it grows, not after.
    await Promise.all(Array.from({ length: MAX_EVENTS + 25 }, () => store.release({ id: "k0" }, { ok: false })));
    const events = await store.events({ limit: 1000 });
    expect(events.length).toBe(1000);
    expect(dbOf(store).query("SELECT COUNT(*) AS n FROM events").get()).toEqual({ n: MAX_EVENTS });
  });
});
