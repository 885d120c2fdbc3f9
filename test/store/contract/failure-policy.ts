import { describe, expect, it } from "bun:test";
import type { KeyInput, KeyStatus, PoolSettings } from "../../../src/store/types";
import { type Harness, keys as makeKeys, noKey, settings } from "./_harness";

const SEC = 1000;
const MIN = 60 * SEC;

function keys(n: number, group?: (i: number) => string | undefined): KeyInput[] {
  return makeKeys(n, { group });
}

export function failurePolicyContract(h: Harness): void {
  /** A store on a manual clock with jitter off (random() = 0), so every rest is exact. */
  async function open(pool: PoolSettings, keyList: KeyInput[]) {
    const { store, clock } = await h.openStore(pool, keyList);
    const byId = async () =>
      Object.fromEntries((await store.status()).map((row) => [row.id, row])) as Record<string, KeyStatus>;
    return { store, clock, byId };
  }

  describe("release with failure classes", () => {
    it("climbs the ladder on repeated rate limits and starts over after a success", async () => {
      const { store, clock, byId } = await open(settings(), keys(1));
      await store.release({ id: "k0" }, { ok: false, status: 429 });
      expect((await byId()).k0).toMatchObject({
        state: "cooling",
        until: clock.now() + MIN,
        failClass: "rate_limit",
        rung: 1,
      });
      clock.advance(MIN);
      await store.release({ id: "k0" }, { ok: false, status: 429 });
      expect((await byId()).k0).toMatchObject({
        until: clock.now() + 5 * MIN,
        rung: 2,
        reason: "rate_limit (HTTP 429); rung 2, resting 5m",
      });
      clock.advance(5 * MIN);
      await store.release({ id: "k0" }, { ok: true });
      expect((await byId()).k0).toMatchObject({ state: "live", failClass: null, rung: 0 });
    });

    it("classifies a 429 whose body says the quota is spent as quota", async () => {
      const { store, clock, byId } = await open(settings(), keys(1));
      await store.release({ id: "k0" }, { ok: false, status: 429, body: '{"error":{"code":"insufficient_quota"}}' });
      expect((await byId()).k0).toMatchObject({ failClass: "quota", until: clock.now() + 5 * 60 * MIN });
    });

    it("costs the key nothing on a client error: no rest, no error counted", async () => {
      const { store, byId } = await open(settings(), keys(1));
      await store.release(
        { id: "k0" },
        { ok: false, status: 400, body: '{"error":{"code":"context_length_exceeded"}}' },
      );
      expect((await byId()).k0).toMatchObject({ state: "unknown", errors: 0, failClass: null, rung: 0 });
    });

    it("starts the ladder over when a probe revives a quarantined key", async () => {
      const { store, byId } = await open(settings(), keys(1));
      await store.release({ id: "k0" }, { ok: false, status: 401 });
      expect((await byId()).k0).toMatchObject({ state: "quarantined", failClass: "auth", rung: 1 });
      await store.recordCheck("default", "k0", { ok: true, latencyMs: 3, reason: "ok" });
      expect((await byId()).k0).toMatchObject({ state: "live", failClass: null, rung: 0 });
    });

    it("forgets the ladder and budget of a key whose token was replaced", async () => {
      const pool = settings();
      const { store, byId } = await open(pool, keys(1));
      await store.release({ id: "k0" }, { ok: false, status: 429, budget: { requests: 0 } });
      await store.syncPools([{ settings: pool, keys: [{ id: "k0", token: "sk-rotated-000000000000000", weight: 1 }] }]);
      expect((await byId()).k0).toMatchObject({ state: "unknown", failClass: null, rung: 0, remaining: null });
    });
  });

  describe("quota groups", () => {
    const acme = (i: number) => (i < 3 ? "acme" : undefined);

    it("rests every key of the group until the same time on a rate limit, in one release", async () => {
      const { store, clock, byId } = await open(settings(), keys(4, acme));
      await store.release({ id: "k1" }, { ok: false, status: 429, retryAfterMs: 90 * SEC });
      const rows = await byId();
      const until = clock.now() + 90 * SEC;
      expect([rows.k0!, rows.k1!, rows.k2!].map((r) => [r.state, r.until, r.group])).toEqual(
        times(3, ["cooling", until, "acme"]),
      );
      expect(rows.k0!.reason).toBe("rate_limit on key k1 of group acme; resting with it");
      expect([rows.k3!.state, rows.k3!.group]).toEqual(["unknown", null]);
      // Only the key outside the group is handed out.
      expect((await store.take("default")).id).toBe("k3");
    });

    it("rests the group on a spent quota too, but not on an overloaded upstream", async () => {
      const { store, clock, byId } = await open(settings(), keys(3, acme));
      await store.release({ id: "k0" }, { ok: false, status: 503 });
      expect((await byId()).k1!.state).toBe("unknown");
      await store.release({ id: "k0" }, { ok: false, status: 402 });
      expect((await byId()).k2).toMatchObject({ state: "cooling", until: clock.now() + 5 * 60 * MIN });
    });

    it("never shortens a group member's longer rest, and leaves a quarantined member quarantined", async () => {
      const { store, clock, byId } = await open(settings(), keys(3, acme));
      await store.release({ id: "k0" }, { ok: false, status: 402 });
      await store.release({ id: "k2" }, { ok: false, status: 401 });
      await store.recordCheck("default", "k1", { ok: true, latencyMs: 1, reason: "ok" });
      clock.advance(SEC);
      await store.release({ id: "k1" }, { ok: false, status: 429 });
      const rows = await byId();
      expect(rows.k0!.until).toBe(clock.now() - SEC + 5 * 60 * MIN);
      expect(rows.k2!.state).toBe("quarantined");
    });

    it("stores the group from the key list and follows changes to it", async () => {
      const pool = settings();
      const { store, byId } = await open(
        pool,
        keys(2, () => "a"),
      );
      await store.syncPools([{ settings: pool, keys: keys(2, (i) => (i === 0 ? "b" : undefined)) }]);
      expect(Object.values(await byId()).map((r) => r.group)).toEqual(["b", null]);
    });
  });

  describe("rate-limit budgets", () => {
    it("rests a key whose budget is spent until it resets, before any 429, and shows what is left", async () => {
      const { store, clock, byId } = await open(settings(), keys(2));
      const reset = clock.now() + 20 * SEC;
      await store.release(
        { id: "k0" },
        {
          ok: true,
          status: 200,
          budget: { requests: 0, requestsResetAt: reset, tokens: 900, tokensResetAt: reset + SEC },
        },
      );
      expect((await byId()).k0).toMatchObject({
        state: "cooling",
        until: reset,
        reason: "upstream rate-limit budget spent; resting until it resets",
        remaining: { requests: 0, tokens: 900, resetAt: reset + SEC },
      });
      expect((await store.take("default")).id).toBe("k1");
      clock.advance(20 * SEC);
      expect((await store.take("default")).id).toBe("k0");
    });

    it("keeps the last known figure for a budget the answer did not mention", async () => {
      const { store, byId } = await open(settings(), keys(1));
      await store.release({ id: "k0" }, { ok: true, budget: { requests: 10, tokens: 500 } });
      await store.release({ id: "k0" }, { ok: true, budget: { requests: 9 } });
      expect((await byId()).k0!.remaining).toEqual({ requests: 9, tokens: 500, resetAt: null });
    });
  });

  describe("rotation", () => {
    it("most_remaining prefers the key with the most requests left, a key never heard of as if full", async () => {
      const { store } = await open(settings({ rotation: "most_remaining" }), keys(3));
      await store.release({ id: "k0" }, { ok: true, budget: { requests: 5 } });
      await store.release({ id: "k1" }, { ok: true, budget: { requests: 50 } });
      expect((await store.take("default")).id).toBe("k2");
      await store.release({ id: "k2" }, { ok: true, budget: { requests: 20 } });
      const ids = [];
      for (let i = 0; i < 3; i++) {
        const lease = await store.take("default");
        ids.push(lease.id);
        await store.release({ lease: lease.lease }, { ok: true });
      }
      // k1 (50) keeps winning; each take spends one from its rank, never enough to fall below 20.
      expect(ids).toEqual(["k1", "k1", "k1"]);
    });

    it("least_busy hands out the key with the fewest leases in flight", async () => {
      const { store, clock } = await open(settings({ rotation: "least_busy" }), keys(3));
      const held = [await store.take("default"), await store.take("default"), await store.take("default")];
      expect(new Set(held.map((l) => l.id)).size).toBe(3);
      const second = await store.take("default");
      clock.advance(1);
      await store.release({ lease: held[2]!.lease }, { ok: true });
      expect((await store.take("default")).id).toBe(held[2]!.id);
      expect(second.id).toBe(held[0]!.id);
    });
  });

  describe("per-key limits", () => {
    it("skips a key that has used its rpm until the minute window closes", async () => {
      const { store, clock, byId } = await open(settings({ rpm: 2 }), keys(1));
      await store.take("default");
      clock.advance(10 * SEC);
      await store.take("default");
      const error = await noKey(store.take("default"));
      expect(error.retryAfterMs).toBe(50 * SEC);
      expect((await byId()).k0!.reason).toBe("rpm limit (2) reached; resting until the minute window closes");
      clock.advance(50 * SEC);
      expect((await store.take("default")).id).toBe("k0");
    });

    it("skips a key that has used its daily_requests until the day window closes", async () => {
      const { store, clock } = await open(settings({ dailyRequests: 3 }), keys(1));
      for (let i = 0; i < 3; i++) {
        await store.release({ lease: (await store.take("default")).lease }, { ok: true });
        clock.advance(MIN);
      }
      expect((await noKey(store.take("default"))).retryAfterMs).toBe(24 * 60 * MIN - 3 * MIN);
    });

    it("rests a key once the tokens released within a minute reach tpm", async () => {
      const { store, clock, byId } = await open(settings({ tpm: 1000 }), keys(1));
      const first = await store.take("default");
      await store.release({ lease: first.lease }, { ok: true, tokens: 400 });
      clock.advance(5 * SEC);
      const second = await store.take("default");
      await store.release({ lease: second.lease }, { ok: true, tokens: 700 });
      expect((await byId()).k0).toMatchObject({ state: "cooling", until: clock.now() - 5 * SEC + MIN });
    });
  });

  describe("limits shared by stores on one backing (instances, processes)", () => {
    it("counts rpm across stores: the limit holds whichever takes the requests", async () => {
      const a = await h.openStore(settings({ rpm: 4 }), keys(1));
      const b = await h.openStore(settings({ rpm: 4 }), keys(1), { backing: a.backing, clock: a.clock });
      for (const store of [a.store, b.store, a.store, b.store])
        await store.release({ lease: (await store.take("default")).lease }, { ok: true });
      await noKey(a.store.take("default"));
      await noKey(b.store.take("default"));
      a.clock.advance(MIN);
      expect((await b.store.take("default")).id).toBe("k0");
    });

    it("counts tpm across stores: tokens released through each add up", async () => {
      const a = await h.openStore(settings({ tpm: 1000 }), keys(1));
      const b = await h.openStore(settings({ tpm: 1000 }), keys(1), { backing: a.backing, clock: a.clock });
      await a.store.release({ lease: (await a.store.take("default")).lease }, { ok: true, tokens: 600 });
      await b.store.release({ lease: (await b.store.take("default")).lease }, { ok: true, tokens: 600 });
      await noKey(a.store.take("default"));
      expect((await a.store.status("default"))[0]).toMatchObject({ state: "cooling" });
    });
  });

  describe("events", () => {
    it("records each transition with its class, reason and until", async () => {
      const { store, clock } = await open(
        settings(),
        keys(2, () => "g"),
      );
      const t0 = clock.now();
      await store.release({ id: "k0" }, { ok: false, status: 429 });
      clock.advance(MIN);
      await store.release({ id: "k0" }, { ok: true });
      expect(await store.events({ limit: 10 })).toEqual([
        {
          at: t0,
          pool: "default",
          key: "k0",
          from: "unknown",
          to: "cooling",
          class: "rate_limit",
          reason: "rate_limit (HTTP 429); rung 1, resting 1m",
          until: t0 + MIN,
        },
        {
          at: t0,
          pool: "default",
          key: "k1",
          from: "unknown",
          to: "cooling",
          class: "rate_limit",
          reason: "rate_limit on key k0 of group g; resting with it",
          until: t0 + MIN,
        },
        {
          at: t0 + MIN,
          pool: "default",
          key: "k0",
          from: "unknown",
          to: "live",
          class: null,
          reason: null,
          until: null,
        },
      ]);
    });

    it("filters by pool, key and time, oldest first, the most recent when no time is given", async () => {
      const { store, clock } = await open(settings(), keys(2));
      for (let i = 0; i < 4; i++) {
        await store.release({ id: `k${i % 2}` }, { ok: false, status: 500 });
        clock.advance(MIN);
      }
      const t0 = clock.now() - 4 * MIN;
      expect((await store.events({ key: "k0", limit: 10 })).map((e) => e.at)).toEqual([t0, t0 + 2 * MIN]);
      expect((await store.events({ limit: 2 })).map((e) => e.at)).toEqual([t0 + 2 * MIN, t0 + 3 * MIN]);
      expect((await store.events({ since: t0, limit: 2 })).map((e) => e.at)).toEqual([t0 + MIN, t0 + 2 * MIN]);
      expect(await store.events({ pool: "default", key: "nope", limit: 5 })).toEqual([]);
    });
  });
}

function times<T>(n: number, value: T): T[] {
  return Array.from({ length: n }, () => value);
}
