import { Database } from "bun:sqlite";
import { SQL } from "bun";
import { describe, expect, it } from "bun:test";
import { MAX_COOLDOWN_MS, MAX_TIME_MS, MAX_WEIGHT, MIN_WEIGHT } from "../../src/pool/bounds";
import { ManualClock } from "../../src/pool/clock";
import { PostgresStore } from "../../src/store/postgres/postgres-store";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import type { PoolStore } from "../../src/store/types";
import { POSTGRES_URL, announceSkip, freshSchema } from "../helpers/postgres";
import { tempDir } from "../helpers/temp-dir";
import { keys, settings } from "./contract/_harness";

announceSkip("test/store/repair-at-open.test.ts (PostgreSQL half)");

/**
 * What an older keypool (one that trusted Retry-After, retry_after_sec and weights) could leave in a
 * store. Each row is written straight into the store's tables, behind its back.
 */
const HOSTILE: Array<{ what: string; table: string; column: string; id?: string; value: number }> = [
  { what: "a rest 27 billion hours long", table: "keys", column: "ready_at", id: "k0", value: 1e17 },
  { what: "a rest until Infinity", table: "keys", column: "ready_at", id: "k1", value: Infinity },
  { what: "a backoff episode past year 9999", table: "keys", column: "fail_until", id: "k1", value: 9e15 },
  { what: "a subnormal weight", table: "keys", column: "weight", id: "k2", value: 1e-320 },
  { what: "an infinite weight", table: "keys", column: "weight", id: "k3", value: Infinity },
  { what: "an infinite rank", table: "keys", column: "rank", id: "k3", value: Infinity },
  { what: "a negative infinite rank", table: "keys", column: "rank", id: "k4", value: -Infinity },
  {
    what: "a rate-limit reset in the year 275760",
    table: "keys",
    column: "remaining_reset_at",
    id: "k4",
    value: 8.64e15,
  },
  { what: "a last use long before 1970", table: "keys", column: "last_used", id: "k4", value: -1e20 },
  { what: "a next check at Infinity", table: "keys", column: "next_check_at", id: "k0", value: Infinity },
  { what: "a remaining budget beyond 2^53", table: "keys", column: "remaining_requests", id: "k0", value: 1e30 },
  { what: "an event at Infinity", table: "events", column: "at", value: Infinity },
  { what: "an event rest until 1e300", table: "events", column: "until", value: 1e300 },
];

interface RawBacking {
  open(clock: ManualClock): Promise<PoolStore>;
  /** Writes `value` into `table.column` (of key `id`, or every row) behind the store's back. */
  poke(table: string, column: string, value: number, id?: string): Promise<void>;
  /** Writes PostgreSQL's NaN, which SQLite cannot hold (it stores NULL). */
  pokeNaN?(table: string, column: string, id: string): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

function sqliteBacking(): RawBacking {
  const dir = tempDir();
  const path = dir.file("state.db");
  return {
    open: async (clock) => new SqliteStore({ path, clock, random: () => 0 }),
    async poke(table, column, value, id) {
      const db = new Database(path);
      db.run(`UPDATE ${table} SET "${column}" = ?1 ${id ? "WHERE id = ?2" : ""}`, id ? [value, id] : [value]);
      db.close();
    },
    async [Symbol.asyncDispose]() {
      dir[Symbol.dispose]();
    },
  };
}

async function postgresBacking(): Promise<RawBacking> {
  const schema = await freshSchema();
  const sql = new SQL(schema.url, { max: 1 });
  const write = (table: string, column: string, value: string, id?: string) =>
    sql.unsafe(
      `UPDATE keypool_${table} SET "${column}" = $1::float8 ${id ? "WHERE id = $2" : ""}`,
      id ? [value, id] : [value],
    );
  return {
    open: (clock) => PostgresStore.open({ url: schema.url, clock, random: () => 0 }),
    async poke(table, column, value, id) {
      await write(table, column, String(value), id);
    },
    async pokeNaN(table, column, id) {
      await write(table, column, "NaN", id);
    },
    async [Symbol.asyncDispose]() {
      await sql.close();
      await schema[Symbol.asyncDispose]();
    },
  };
}

/** Every time a key or an event shows, as /status and /events would render it. */
async function shownTimes(store: PoolStore): Promise<number[]> {
  const times: Array<number | null> = [];
  for (const k of await store.status())
    times.push(k.until, k.lastUsed, k.lastCheck, k.nextCheckAt, k.remaining?.resetAt ?? null);
  for (const e of await store.events({ limit: 1000 })) times.push(e.at, e.until);
  return times.filter((t): t is number => t !== null);
}

function repairContract(name: string, make: () => Promise<RawBacking>, skip = false) {
  describe.skipIf(skip)(`${name}: a store holding out-of-range values is repaired when it opens`, () => {
    it("brings every rest, time, weight and rank back in range, and the weighted pool serves again", async () => {
      await using backing = await make();
      const clock = new ManualClock();
      const first = await backing.open(clock);
      await first.syncPools([{ settings: settings({ rotation: "weighted" }), keys: keys(5) }]);
      // A failure records an event to corrupt.
      await first.release({ id: "k0", pool: "default" }, { ok: false, status: 500 });
      await first.close();
      for (const bad of HOSTILE) await backing.poke(bad.table, bad.column, bad.value, bad.id);
      if (backing.pokeNaN) {
        await backing.pokeNaN("keys", "rank", "k1");
        await backing.pokeNaN("keys", "weight", "k1");
      }

      const store = await backing.open(clock);
      try {
        const now = clock.now();
        const status = await store.status();
        for (const k of status) {
          expect(k.weight).toBeGreaterThanOrEqual(MIN_WEIGHT);
          expect(k.weight).toBeLessThanOrEqual(MAX_WEIGHT);
          if (k.until !== null) expect(k.until).toBeLessThanOrEqual(now + MAX_COOLDOWN_MS);
          if (k.remaining?.requests != null) expect(Number.isSafeInteger(k.remaining.requests)).toBe(true);
        }
        for (const t of await shownTimes(store)) {
          expect(t).toBeGreaterThanOrEqual(0);
          expect(t).toBeLessThanOrEqual(MAX_TIME_MS);
          expect(() => new Date(t).toISOString()).not.toThrow();
        }
        // As the daemon does at start: the tokens file's keys (weights included) are synced in.
        await store.syncPools([{ settings: settings({ rotation: "weighted" }), keys: keys(5) }]);
        // The keys that were not resting take turns; no take fails on a NULL or infinite rank.
        const taken = new Set<string>();
        for (let i = 0; i < 20; i++) {
          const lease = await store.take("default");
          taken.add(lease.id);
          await store.release({ lease: lease.lease }, { ok: true });
        }
        expect([...taken].sort()).toEqual(["k2", "k3", "k4"]);
        // Once the longest rest keypool gives is over, the keys rested "for ever" serve again.
        clock.advance(MAX_COOLDOWN_MS + 1);
        const later = new Set<string>();
        for (let i = 0; i < 40; i++) {
          const lease = await store.take("default");
          later.add(lease.id);
          await store.release({ lease: lease.lease }, { ok: true });
        }
        expect([...later].sort()).toEqual(["k0", "k1", "k2", "k3", "k4"]);
      } finally {
        await store.close();
      }
      // Sixty takes and releases against PostgreSQL: room for a loaded machine beyond bun's 5 s default.
    }, 30_000);
  });
}

repairContract("SQLite", async () => sqliteBacking());
repairContract("PostgreSQL", postgresBacking, !POSTGRES_URL);
