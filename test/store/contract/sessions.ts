import { describe, expect, it } from "bun:test";
import type { PoolStore } from "../../../src/store/types";
import { type Harness, failure, keys, settings, use } from "./_harness";

const MIN = 60_000;

async function sessionsByKey(store: PoolStore): Promise<Record<string, number>> {
  return Object.fromEntries((await store.status("default")).map((k) => [k.id, k.sessions]));
}

export function sessionsContract(h: Harness): void {
  describe("sticky sessions in the store", () => {
    it("gives a session the same key on every take while rotation moves everyone else on", async () => {
      const { store } = await h.openStore();
      const own = await use(store, { session: "s1" });
      const got: string[] = [];
      for (let i = 0; i < 6; i++) got.push(await use(store, { session: "s1" }), await use(store));
      expect(got.filter((_, i) => i % 2 === 0)).toEqual(Array(6).fill(own));
      expect(new Set(got.filter((_, i) => i % 2 === 1)).size).toBeGreaterThan(1);
      expect([own, await sessionsByKey(store)]).toEqual(["k0", { k0: 1, k1: 0, k2: 0 }]);
    });

    it("detours on one key while its own rests, and goes back once the rest is over", async () => {
      const { store, clock } = await h.openStore();
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
      const { store } = await h.openStore(settings({ maxConcurrency: 1 }));
      const own = await use(store, { session: "s1" });
      expect(await use(store, { session: "s1", exclude: [own] })).not.toBe(own);
      const held = await store.take("default", { session: "s1" });
      expect(held.id).toBe(own);
      expect(await use(store, { session: "s1" })).not.toBe(own);
      await store.release({ lease: held.lease }, { ok: true });
      expect(await use(store, { session: "s1" })).toBe(own);
    });

    it("moves a session for good when its key is quarantined, even after a probe revives it", async () => {
      const { store } = await h.openStore();
      const own = await use(store, { session: "s1" });
      await store.release({ id: own }, { ok: false, status: 401 });
      const moved = await use(store, { session: "s1" });
      expect(moved).not.toBe(own);
      await store.recordCheck("default", own, { ok: true, status: 200, latencyMs: 5, reason: "ok" });
      expect(await use(store, { session: "s1" })).toBe(moved);
      expect(await sessionsByKey(store)).toMatchObject({ [own]: 0, [moved]: 1 });
    });

    it("lets a mapping lapse session_ttl_sec after the session last used its own key", async () => {
      const { store, clock } = await h.openStore(settings({ sessionTtlSec: 60 }));
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
      const { store, clock } = await h.openStore(settings({ maxSessions: 3 }), keys(5));
      for (let i = 0; i < 5; i++) {
        await use(store, { session: `s${i}` });
        clock.advance(1000);
      }
      expect(await sessionsByKey(store)).toEqual({ k0: 0, k1: 0, k2: 1, k3: 1, k4: 1 });
    });

    it("shares mappings between two stores on one backing", async () => {
      const a = await h.openStore(settings(), keys(3));
      const b = await h.openStore(settings(), keys(3), { backing: a.backing, clock: a.clock });
      const own = await use(a.store, { session: "s1" });
      // b's own rotation would move on; the session's mapping, written by a, wins.
      expect([await use(b.store), await use(b.store, { session: "s1" })]).toEqual([
        expect.not.stringMatching(own),
        own,
      ]);
    });

    it("maps a new session to one key when its first takes arrive at once on two stores", async () => {
      const a = await h.openStore(settings(), keys(4));
      const b = await h.openStore(settings(), keys(4), { backing: a.backing, clock: a.clock });
      for (let round = 0; round < 5; round++) {
        const session = `burst-${round}`;
        const leases = await Promise.all(
          Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? a : b).store.take("default", { session })),
        );
        expect(new Set(leases.map((l) => l.id)).size).toBe(1);
        await Promise.all(leases.map((l, i) => (i % 2 === 0 ? a : b).store.release({ lease: l.lease }, { ok: true })));
      }
    });

    it("adds each release's tokens to its session's totals and lists live sessions by input tokens", async () => {
      const { store, clock } = await h.openStore(settings({ sessionTtlSec: 60 }));
      const report = async (
        session: string,
        usage?: { input: number; output: number; cached?: number; cacheWrite?: number },
      ) => {
        const lease = await store.take("default", { session });
        await store.release({ lease: lease.lease }, { ok: true, session, usage });
      };
      await report("small", { input: 100, output: 5, cached: 0 });
      await report("big", { input: 1000, output: 10, cacheWrite: 1000 });
      await report("big", { input: 1000, output: 10, cached: 900 });
      // A failure reports no usage: it counts as a request and adds no tokens.
      await report("big");
      // A session no longer mapped (never taken with, or evicted) gains nothing and lists nothing.
      await store.release(
        { lease: (await store.take("default")).lease },
        { ok: true, session: "unmapped", usage: { input: 5, output: 5 } },
      );

      const top = await store.sessionUsage({ pool: "default", limit: 10 });
      expect(top.map(({ expiresAt, ...rest }) => rest)).toEqual([
        {
          pool: "default",
          session: "big",
          keyId: "k1",
          requests: 3,
          inputTokens: 2000,
          outputTokens: 20,
          cachedTokens: 900,
          cacheWriteTokens: 1000,
        },
        {
          pool: "default",
          session: "small",
          keyId: "k0",
          requests: 1,
          inputTokens: 100,
          outputTokens: 5,
          cachedTokens: 0,
          cacheWriteTokens: 0,
        },
      ]);
      expect((await store.sessionUsage({ pool: "default", limit: 1 })).map((s) => s.session)).toEqual(["big"]);
      // Only live mappings are listed.
      clock.advance(61_000);
      expect(await store.sessionUsage({ pool: "default", limit: 10 })).toEqual([]);
      expect((await failure(store.sessionUsage({ pool: "nope", limit: 10 }))).code).toBe("UNKNOWN_POOL");
    });
  });
}
