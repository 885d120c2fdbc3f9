import { describe, expect, it } from "bun:test";
import type { Rotation } from "../../../src/config/types";
import { type Harness, failure, keys, seededRandom, settings, use } from "./_harness";

export function takeReleaseContract(h: Harness): void {
  describe("take", () => {
    it("hands out every key once before repeating one (lru)", async () => {
      const { store, clock } = await h.openStore(settings(), keys(3), { random: seededRandom(42) });
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
      const { store } = await h.openStore(settings({ rotation: "round_robin" }), keys(3));
      const ids = [];
      for (let i = 0; i < 7; i++) ids.push((await store.take("default")).id);
      expect(ids).toEqual(["k0", "k1", "k2", "k0", "k1", "k2", "k0"]);
    });

    it("spreads traffic in proportion to weight (weighted)", async () => {
      const { store } = await h.openStore(settings({ rotation: "weighted" }), keys(4, { weight: (i) => i + 1 }));
      const counts: Record<string, number> = {};
      for (let i = 0; i < 1_000; i++) {
        const lease = await store.take("default");
        counts[lease.id] = (counts[lease.id] ?? 0) + 1;
        await store.release({ lease: lease.lease }, { ok: true });
      }
      // Weights 1:2:3:4 of 10 → 100, 200, 300, 400; stride scheduling is deterministic, so within 2%.
      for (const [i, expected] of [100, 200, 300, 400].entries()) {
        expect(Math.abs(counts[`k${i}`]! - expected)).toBeLessThanOrEqual(expected * 0.02);
      }
    }, 20_000);

    it("keeps weighted fair across processes sharing the pool, and starts a rested key at the pool's virtual time", async () => {
      const backing = await h.backing();
      const pool = settings({ rotation: "weighted" });
      const { store: busy, clock } = await h.openStore(pool, keys(3), { backing });
      // A second process on the same state, idle while the first works the pool.
      const { store: idle } = await h.openStore(pool, keys(3), { backing, clock });
      await busy.release({ id: "k0", pool: "default" }, { ok: false, status: 429 });
      const during: string[] = [];
      for (let i = 0; i < 100; i++) during.push(await use(busy));
      expect(during).not.toContain("k0");
      clock.advance(3_600_000);
      // k0 is back, and the process that saw none of the work takes now: k0's fair share is one take
      // in three, not a run of takes until its stale rank catches up with the others'.
      const after: string[] = [];
      for (let i = 0; i < 30; i++) after.push(await use(idle));
      for (const id of ["k0", "k1", "k2"]) expect(after.filter((x) => x === id).length).toBeGreaterThanOrEqual(9);
      // At most a tie's worth of repeats: k0 re-enters level with the others.
      expect(after.some((id, i) => i > 1 && after[i - 1] === id && after[i - 2] === id)).toBe(false);
    });

    it("uses every key with random, none far from the mean", async () => {
      const { store } = await h.openStore(settings({ rotation: "random" }), keys(5), { random: seededRandom(42) });
      const counts: Record<string, number> = {};
      for (let i = 0; i < 2_000; i++) {
        const { id } = await store.take("default");
        counts[id] = (counts[id] ?? 0) + 1;
      }
      expect(Object.keys(counts).length).toBe(5);
      for (const n of Object.values(counts)) expect(Math.abs(n - 400)).toBeLessThan(100);
    });

    it("does not hand out a resting key, and says when the soonest one frees", async () => {
      const { store, clock } = await h.openStore(settings({ cooldownSec: 30 }), keys(2));
      await store.take("default");
      clock.advance(10_000);
      await store.take("default");
      const error = await failure(store.take("default"));
      expect([error.code, error.retryAfterMs]).toEqual(["NO_KEY_AVAILABLE", 20_000]);
      clock.advance(20_000);
      expect((await store.take("default")).id).toBe("k0");
    });

    it("honours max_concurrency and frees the slot on release", async () => {
      const { store } = await h.openStore(settings({ maxConcurrency: 1 }), keys(1));
      const lease = await store.take("default");
      expect((await failure(store.take("default"))).code).toBe("NO_KEY_AVAILABLE");
      await store.release({ lease: lease.lease }, { ok: true });
      expect((await store.take("default")).id).toBe("k0");
    });

    it("never hands out one exclusive lease twice to concurrent takes", async () => {
      const { store } = await h.openStore(settings({ maxConcurrency: 1 }), keys(3));
      const results = await Promise.allSettled(Array.from({ length: 12 }, () => store.take("default")));
      const ids = results.flatMap((r) => (r.status === "fulfilled" ? [r.value.id] : []));
      expect(ids.sort()).toEqual(["k0", "k1", "k2"]);
    });

    it("skips excluded keys", async () => {
      const { store } = await h.openStore(settings(), keys(3));
      for (let i = 0; i < 4; i++) expect((await store.take("default", { exclude: ["k0", "k1"] })).id).toBe("k2");
      expect((await failure(store.take("default", { exclude: ["k0", "k1", "k2"] }))).code).toBe("NO_KEY_AVAILABLE");
    });

    it("reclaims a lease never released once lease_ttl_sec has passed", async () => {
      const { store, clock } = await h.openStore(settings({ maxConcurrency: 1, leaseTtlSec: 60 }), keys(1));
      const abandoned = await store.take("default");
      const error = await failure(store.take("default"));
      expect(error.retryAfterMs).toBe(60_000);
      clock.advance(60_000);
      expect((await store.take("default")).id).toBe("k0");
      expect((await failure(store.release({ lease: abandoned.lease }, { ok: true }))).code).toBe("UNKNOWN_LEASE");
    });

    it("skips quarantined keys until a probe revives them", async () => {
      const { store } = await h.openStore(settings(), keys(2));
      await store.release({ id: "k0" }, { ok: false, status: 401 });
      for (let i = 0; i < 3; i++) expect((await store.take("default")).id).toBe("k1");
      await store.recordCheck("default", "k0", { ok: true, latencyMs: 5, reason: "ok" });
      const ids = new Set([(await store.take("default")).id, (await store.take("default")).id]);
      expect(ids).toEqual(new Set(["k0", "k1"]));
    });

    it("names the pool it does not know", async () => {
      const { store } = await h.openStore(settings(), keys(1));
      const error = await failure(store.take("nope"));
      expect([error.code, error.message]).toEqual(["UNKNOWN_POOL", 'pool "nope" does not exist (pools: default)']);
    });

    it.each(["lru", "round_robin", "random", "weighted", "most_remaining", "least_busy"] as Rotation[])(
      "hands out a token with its lease (%s)",
      async (rotation) => {
        const { store } = await h.openStore(settings({ rotation }), keys(2));
        const lease = await store.take("default");
        expect(lease.token).toBe(keys(2).find((k) => k.id === lease.id)!.token);
        expect(lease.expiresAt - lease.takenAt).toBe(300_000);
      },
    );
  });

  describe("release", () => {
    it("counts requests and errors and explains the state", async () => {
      const { store } = await h.openStore(settings({ cooldownSec: 60 }), keys(1));
      const lease = await store.take("default");
      const result = await store.release({ lease: lease.lease }, { ok: false, status: 429 });
      expect(result).toMatchObject({ pool: "default", id: "k0", state: "cooling" });
      expect(result.reason).toStartWith("rate_limit (HTTP 429); rung 1, resting");
      const [row] = await store.status("default");
      expect([row!.requests, row!.errors, row!.inFlight]).toEqual([1, 1, 0]);
    });

    it("rejects an unknown lease and an unknown key", async () => {
      const { store } = await h.openStore(settings(), keys(1));
      expect((await failure(store.release({ lease: "ls_nope" }, { ok: true }))).code).toBe("UNKNOWN_LEASE");
      expect((await failure(store.release({ id: "nope" }, { ok: true }))).code).toBe("UNKNOWN_KEY");
    });
  });

  describe("syncPools", () => {
    it("keeps the state of kept keys, adds new ones and stops handing out removed ones", async () => {
      const { store } = await h.openStore(settings(), keys(3));
      await store.release({ id: "k1" }, { ok: false, status: 401 });
      const result = await store.syncPools([
        {
          settings: settings(),
          keys: [...keys(3).slice(1), { id: "new", token: "sk-new-000000000000000000", weight: 1 }],
        },
      ]);
      expect(result.default).toEqual({ added: ["new"], updated: [], removed: ["k0"], kept: 2 });
      const states = Object.fromEntries((await store.status()).map((r) => [r.id, r.state]));
      expect(states).toEqual({ k1: "quarantined", k2: "unknown", new: "unknown" });
      for (let i = 0; i < 4; i++) expect(["k2", "new"]).toContain((await store.take("default")).id);
    });

    it("forgets what it knew about a key whose token changed", async () => {
      const { store } = await h.openStore(settings(), keys(1));
      await store.release({ id: "k0" }, { ok: false, status: 401 });
      await store.syncPools([
        { settings: settings(), keys: [{ id: "k0", token: "sk-rotated-00000000000000", weight: 1 }] },
      ]);
      const [row] = await store.status();
      expect([row!.state, row!.reason]).toEqual(["unknown", "token replaced"]);
    });

    it("keeps state across closing and reopening the store", async () => {
      const first = await h.openStore(settings({ cooldownSec: 60 }), keys(2));
      await first.store.take("default");
      await first.store.release({ id: "k1" }, { ok: false, status: 403 });
      const before = await first.store.status();
      await first.store.close();
      const second = await h.openStore(settings({ cooldownSec: 60 }), keys(2), {
        backing: first.backing,
        clock: first.clock,
      });
      expect(await second.store.status()).toEqual(before);
    });
  });

  describe("two stores on one backing (two processes, or two instances)", () => {
    it("see each other's changes at once and never share an exclusive lease", async () => {
      const a = await h.openStore(settings({ maxConcurrency: 1 }), keys(2));
      const b = await h.openStore(settings({ maxConcurrency: 1 }), keys(2), { backing: a.backing, clock: a.clock });
      await a.store.release({ id: "k0" }, { ok: false, status: 401 });
      expect((await b.store.status()).find((k) => k.id === "k0")!.state).toBe("quarantined");
      const held = await b.store.take("default");
      expect(held.id).toBe("k1");
      expect((await failure(a.store.take("default"))).code).toBe("NO_KEY_AVAILABLE");
      await a.store.release({ lease: held.lease }, { ok: true });
      expect((await a.store.take("default")).id).toBe("k1");
    });
  });
}
