import type { Database } from "bun:sqlite";
import { describe, expect, it } from "bun:test";
import { ManualClock } from "../../src/pool/clock";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import type { KeyInput, PoolSettings, PoolStore, TakeOptions } from "../../src/store/types";
import { tempDir } from "../helpers/temp-dir";

const MIN = 60_000;

function settings(overrides: Partial<PoolSettings> = {}): PoolSettings {
  return { name: "default", rotation: "lru", cooldownSec: 0, leaseTtlSec: 300, recheckIntervalSec: 300, ...overrides };
}

function keys(n: number): KeyInput[] {
  return Array.from({ length: n }, (_, i) => ({ id: `k${i}`, token: `sk-test-${String(i).padStart(20, "0")}`, weight: 1 }));
}

/** A store on a manual clock with jitter off, so every rest is exact. */
async function openStore(pool: PoolSettings = settings(), n = 3, path = ":memory:", clock = new ManualClock()) {
  const store = new SqliteStore({ path, clock, random: () => 0 });
  await store.syncPools([{ settings: pool, keys: keys(n) }]);
  return { store, clock };
}

/** Takes and gives back at once; the key id it got. */
async function use(store: PoolStore, options: TakeOptions = {}): Promise<string> {
  const lease = await store.take("default", options);
  await store.release({ lease: lease.lease }, { ok: true });
  return lease.id;
}

async function sessionsByKey(store: PoolStore): Promise<Record<string, number>> {
  return Object.fromEntries((await store.status("default")).map((k) => [k.id, k.sessions]));
}

describe("sticky sessions in the store", () => {
  it("gives a session the same key on every take while rotation moves everyone else on", async () => {
    const { store } = await openStore();
    const own = await use(store, { session: "s1" });
    const got: string[] = [];
    for (let i = 0; i < 6; i++) got.push(await use(store, { session: "s1" }), await use(store));
    expect(got.filter((_, i) => i % 2 === 0)).toEqual(Array(6).fill(own));
    expect(new Set(got.filter((_, i) => i % 2 === 1)).size).toBeGreaterThan(1);
    expect([own, await sessionsByKey(store)]).toEqual(["k0", { k0: 1, k1: 0, k2: 0 }]);
  });

  it("detours on one key while its own rests, and goes back once the rest is over", async () => {
    const { store, clock } = await openStore();
    const own = await use(store, { session: "s1" });
    await store.release({ id: own }, { ok: false, status: 429 });
    const detours: string[] = [];
    // Untouched, lru would alternate between the two other keys: the detour stays on one.
    for (let i = 0; i < 4; i++) detours.push(await use(store, { session: "s1" }));
    expect(new Set(detours).size).toBe(1);
    expect(detours[0]).not.toBe(own);
    clock.advance(MIN);
    expect(await use(store, { session: "s1" })).toBe(own);
    // The mapping never moved: the detour key holds no session.
    expect((await sessionsByKey(store))[detours[0]!]).toBe(0);
  });

  it("detours when a retry excludes its key, or its key is at max_concurrency, without moving", async () => {
    const { store } = await openStore(settings({ maxConcurrency: 1 }));
    const own = await use(store, { session: "s1" });
    expect(await use(store, { session: "s1", exclude: [own] })).not.toBe(own);
    const held = await store.take("default", { session: "s1" });
    expect(held.id).toBe(own);
    expect(await use(store, { session: "s1" })).not.toBe(own);
    await store.release({ lease: held.lease }, { ok: true });
    expect(await use(store, { session: "s1" })).toBe(own);
  });

  it("moves a session for good when its key is quarantined, even after a probe revives it", async () => {
    const { store } = await openStore();
    const own = await use(store, { session: "s1" });
    await store.release({ id: own }, { ok: false, status: 401 });
    const moved = await use(store, { session: "s1" });
    expect(moved).not.toBe(own);
    await store.recordCheck("default", own, { ok: true, status: 200, latencyMs: 5, reason: "ok" });
    expect(await use(store, { session: "s1" })).toBe(moved);
    expect(await sessionsByKey(store)).toMatchObject({ [own]: 0, [moved]: 1 });
  });

  it("lets a mapping lapse session_ttl_sec after the session last used its own key", async () => {
    const { store, clock } = await openStore(settings({ sessionTtlSec: 60 }));
    // lru: k0 and k1 go first, so the session lands on k2 and the next plain pick would be k0.
    await use(store);
    await use(store);
    expect(await use(store, { session: "s1" })).toBe("k2");
    clock.advance(59_000);
    expect(await use(store, { session: "s1" })).toBe("k2");
    clock.advance(60_000);
    expect(await sessionsByKey(store)).toEqual({ k0: 0, k1: 0, k2: 0 });
    expect(await use(store, { session: "s1" })).toBe("k0");
  });

  it("keeps at most session.max mappings per pool, evicting the oldest", async () => {
    const { store, clock } = await openStore(settings({ maxSessions: 3 }), 5);
    for (let i = 0; i < 5; i++) {
      await use(store, { session: `s${i}` });
      clock.advance(1000);
    }
    expect(await sessionsByKey(store)).toEqual({ k0: 0, k1: 0, k2: 1, k3: 1, k4: 1 });
  });

  it("shares mappings between processes on one file", async () => {
    using dir = tempDir();
    const path = dir.file("state.db");
    const clock = new ManualClock();
    const a = await openStore(settings(), 3, path, clock);
    const b = await openStore(settings(), 3, path, clock);
    try {
      const own = await use(a.store, { session: "s1" });
      // b's own rotation would move on; the session's mapping, written by a, wins.
      expect([await use(b.store), await use(b.store, { session: "s1" })]).toEqual([expect.not.stringMatching(own), own]);
    } finally {
      await a.store.close();
      await b.store.close();
    }
  });

  it("looks a session up by its primary key and sweeps lapsed ones by the expiry index", async () => {
    const { store } = await openStore();
    const db = (store as unknown as { db: Database }).db;
    const plan = (sql: string) => (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as Array<{ detail: string }>).map((p) => p.detail);
    expect(plan("SELECT key_id, detour_id, expires_at FROM sessions WHERE pool = 'default' AND session = 's'")).toEqual([
      "SEARCH sessions USING PRIMARY KEY (pool=? AND session=?)",
    ]);
    expect(plan("DELETE FROM sessions WHERE pool = 'default' AND expires_at <= 5")).toEqual(["SEARCH sessions USING INDEX sessions_expiry (pool=? AND expires_at<?)"]);
  });
});
