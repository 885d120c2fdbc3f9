import { describe, expect, it } from "bun:test";
import { Database } from "bun:sqlite";
import { statSync } from "node:fs";
import type { Rotation } from "../../src/config/types";
import { ManualClock } from "../../src/pool/clock";
import { DomainError } from "../../src/pool/errors";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import type { KeyInput, PoolSettings } from "../../src/store/types";
import { tempDir } from "../helpers/temp-dir";

function settings(overrides: Partial<PoolSettings> = {}): PoolSettings {
  return { name: "default", rotation: "lru", cooldownSec: 0, leaseTtlSec: 300, recheckIntervalSec: 300, ...overrides };
}

function keys(n: number, weight = (_: number) => 1): KeyInput[] {
  return Array.from({ length: n }, (_, i) => ({ id: `k${i}`, token: `sk-test-${String(i).padStart(20, "0")}`, weight: weight(i) }));
}

async function openStore(pool: PoolSettings, keyList: KeyInput[], path = ":memory:", clock = new ManualClock()) {
  const store = new SqliteStore({ path, clock, random: seededRandom(42) });
  await store.syncPools([{ settings: pool, keys: keyList }]);
  return { store, clock };
}

function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

async function takeError(promise: Promise<unknown>): Promise<DomainError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof DomainError) return error;
    throw error;
  }
  throw new Error("expected the call to fail");
}

describe("take", () => {
  it("hands out every key once before repeating one (lru)", async () => {
    const { store, clock } = await openStore(settings(), keys(3));
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const lease = await store.take("default");
      ids.push(lease.id);
      await store.release({ lease: lease.lease }, { ok: true });
      clock.advance(1);
    }
    expect(new Set(ids.slice(0, 3)).size).toBe(3);
    expect(ids.slice(3)).toEqual(ids.slice(0, 3));
  });

  it("cycles in a fixed order with round_robin", async () => {
    const { store } = await openStore(settings({ rotation: "round_robin" }), keys(3));
    const ids = [];
    for (let i = 0; i < 7; i++) ids.push((await store.take("default")).id);
    expect(ids).toEqual(["k0", "k1", "k2", "k0", "k1", "k2", "k0"]);
  });

  it("spreads traffic in proportion to weight over 10,000 takes (weighted)", async () => {
    const { store } = await openStore(settings({ rotation: "weighted" }), keys(4, (i) => i + 1));
    const counts: Record<string, number> = {};
    for (let i = 0; i < 10_000; i++) {
      const lease = await store.take("default");
      counts[lease.id] = (counts[lease.id] ?? 0) + 1;
      await store.release({ lease: lease.lease }, { ok: true });
    }
    // Weights 1:2:3:4 of 10 → 1000, 2000, 3000, 4000; allow 2%.
    for (const [i, expected] of [1000, 2000, 3000, 4000].entries()) {
      expect(Math.abs(counts[`k${i}`]! - expected)).toBeLessThan(expected * 0.02);
    }
  });

  it("uses every key with random, none far from the mean", async () => {
    const { store } = await openStore(settings({ rotation: "random" }), keys(5));
    const counts: Record<string, number> = {};
    for (let i = 0; i < 5_000; i++) {
      const { id } = await store.take("default");
      counts[id] = (counts[id] ?? 0) + 1;
    }
    expect(Object.keys(counts).length).toBe(5);
    for (const n of Object.values(counts)) expect(Math.abs(n - 1000)).toBeLessThan(250);
  });

  it("does not hand out a resting key, and says when the soonest one frees", async () => {
    const { store, clock } = await openStore(settings({ cooldownSec: 30 }), keys(2));
    await store.take("default");
    clock.advance(10_000);
    await store.take("default");
    const error = await takeError(store.take("default"));
    expect([error.code, error.retryAfterMs]).toEqual(["NO_KEY_AVAILABLE", 20_000]);
    clock.advance(20_000);
    expect((await store.take("default")).id).toBe("k0");
  });

  it("honours max_concurrency and frees the slot on release", async () => {
    const { store } = await openStore(settings({ maxConcurrency: 1 }), keys(1));
    const lease = await store.take("default");
    expect((await takeError(store.take("default"))).code).toBe("NO_KEY_AVAILABLE");
    await store.release({ lease: lease.lease }, { ok: true });
    expect((await store.take("default")).id).toBe("k0");
  });

  it("reclaims a lease never released once lease_ttl_sec has passed", async () => {
    const { store, clock } = await openStore(settings({ maxConcurrency: 1, leaseTtlSec: 60 }), keys(1));
    const abandoned = await store.take("default");
    const error = await takeError(store.take("default"));
    expect(error.retryAfterMs).toBe(60_000);
    clock.advance(60_000);
    expect((await store.take("default")).id).toBe("k0");
    expect((await takeError(store.release({ lease: abandoned.lease }, { ok: true }))).code).toBe("UNKNOWN_LEASE");
  });

  it("skips quarantined keys until a probe revives them", async () => {
    const { store } = await openStore(settings(), keys(2));
    await store.release({ id: "k0" }, { ok: false, status: 401 });
    for (let i = 0; i < 3; i++) expect((await store.take("default")).id).toBe("k1");
    await store.recordCheck("default", "k0", { ok: true, latencyMs: 5, reason: "ok" });
    const ids = new Set([(await store.take("default")).id, (await store.take("default")).id]);
    expect(ids).toEqual(new Set(["k0", "k1"]));
  });

  it("names the pool it does not know", async () => {
    const { store } = await openStore(settings(), keys(1));
    const error = await takeError(store.take("nope"));
    expect([error.code, error.message]).toEqual(["UNKNOWN_POOL", 'pool "nope" does not exist (pools: default)']);
  });

  it.each(["lru", "round_robin", "random", "weighted"] as Rotation[])("walks the pick index instead of scanning (%s)", async (rotation) => {
    const { store } = await openStore(settings({ rotation }), keys(3));
    const db = (store as unknown as { db: Database }).db;
    const plan = db
      .prepare(`EXPLAIN QUERY PLAN SELECT * FROM keys WHERE pool = 'default' AND takeable = 1 AND rank >= ?2 AND ready_at <= ?1
                AND (max_concurrency IS NULL OR in_flight < max_concurrency) ORDER BY rank LIMIT 1`)
      .all(0, 0) as Array<{ detail: string }>;
    expect(plan.map((p) => p.detail)).toEqual(["SEARCH keys USING INDEX keys_pick (pool=? AND takeable=? AND rank>?)"]);
  });
});

describe("release", () => {
  it("counts requests and errors and explains the state", async () => {
    const { store } = await openStore(settings({ cooldownSec: 60 }), keys(1));
    const lease = await store.take("default");
    const result = await store.release({ lease: lease.lease }, { ok: false, status: 429 });
    expect(result).toMatchObject({ pool: "default", id: "k0", state: "cooling" });
    expect(result.reason).toStartWith("rate_limit (HTTP 429); rung 1, resting");
    const [row] = await store.status("default");
    expect([row!.requests, row!.errors, row!.inFlight]).toEqual([1, 1, 0]);
  });

  it("rejects an unknown lease and an unknown key", async () => {
    const { store } = await openStore(settings(), keys(1));
    expect((await takeError(store.release({ lease: "ls_nope" }, { ok: true }))).code).toBe("UNKNOWN_LEASE");
    expect((await takeError(store.release({ id: "nope" }, { ok: true }))).code).toBe("UNKNOWN_KEY");
  });
});

describe("syncPools", () => {
  it("keeps the state of kept keys, adds new ones and stops handing out removed ones", async () => {
    const { store } = await openStore(settings(), keys(3));
    await store.release({ id: "k1" }, { ok: false, status: 401 });
    const result = await store.syncPools([{ settings: settings(), keys: [...keys(3).slice(1), { id: "new", token: "sk-new-000000000000000000", weight: 1 }] }]);
    expect(result.default).toEqual({ added: ["new"], updated: [], removed: ["k0"], kept: 2 });
    const states = Object.fromEntries((await store.status()).map((r) => [r.id, r.state]));
    expect(states).toEqual({ k1: "quarantined", k2: "unknown", new: "unknown" });
    for (let i = 0; i < 4; i++) expect(["k2", "new"]).toContain((await store.take("default")).id);
  });

  it("forgets what it knew about a key whose token changed", async () => {
    const { store } = await openStore(settings(), keys(1));
    await store.release({ id: "k0" }, { ok: false, status: 401 });
    await store.syncPools([{ settings: settings(), keys: [{ id: "k0", token: "sk-rotated-00000000000000", weight: 1 }] }]);
    const [row] = await store.status();
    expect([row!.state, row!.reason]).toEqual(["unknown", "token replaced"]);
  });
});

describe("the database file", () => {
  it("is created with mode 0600 and keeps state across reopening", async () => {
    using dir = tempDir();
    const path = dir.file("state/keypool.db");
    const clock = new ManualClock();
    const first = await openStore(settings({ cooldownSec: 60 }), keys(2), path, clock);
    await first.store.take("default");
    await first.store.release({ id: "k1" }, { ok: false, status: 403 });
    const before = await first.store.status();
    await first.store.close();
    expect(statSync(path).mode & 0o777).toBe(0o600);

    const second = await openStore(settings({ cooldownSec: 60 }), keys(2), path, clock);
    expect(await second.store.status()).toEqual(before);
    await second.store.close();
  });
});
