import { describe, expect, it } from "bun:test";
import { compileAccessRules } from "../../../src/pool/model-access";
import type { KeyInput, KeyStatus, PoolStore } from "../../../src/store/types";
import { type Harness, keys, noKey, settings } from "./_harness";

const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;

const BIG = "m-big";
const SMALL = "m-small";

/** Takes for `model` (or none) `n` times, giving each back at once; the ids handed out. */
async function takes(store: PoolStore, n: number, model?: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const lease = await store.take("default", model === undefined ? {} : { model });
    ids.push(lease.id);
    await store.release({ lease: lease.lease }, { ok: true, model });
  }
  return ids;
}

async function statusOf(store: PoolStore, id: string): Promise<KeyStatus> {
  const row = (await store.status("default")).find((k) => k.id === id);
  if (!row) throw new Error(`no key ${id}`);
  return row;
}

const DENIED_BODY = '{"error":{"code":"model_not_found","message":"The model `m-big` does not exist"}}';

export function modelsContract(h: Harness): void {
  describe("model-aware keys", () => {
    it("rests only the (key, model) pair on a rate limit: other models keep using the key", async () => {
      const { store, clock } = await h.openStore(settings(), keys(3));
      const result = await store.release({ id: "k0" }, { ok: false, status: 429, model: BIG });
      expect(result).toMatchObject({ id: "k0", pair: { model: BIG, state: "cooling", until: clock.now() + MIN } });
      expect(await takes(store, 6, BIG)).not.toContain("k0");
      expect(await takes(store, 6, SMALL)).toContain("k0");
      // A take that names no model is the key's alone: the key is not resting.
      expect(await takes(store, 6)).toContain("k0");
      const k0 = await statusOf(store, "k0");
      expect(k0.state).not.toBe("cooling");
      expect(k0.models).toEqual({
        [BIG]: { state: "cooling", until: clock.now() + MIN, reason: "rate_limit (HTTP 429); rung 1, resting 1m" },
      });
      clock.advance(MIN);
      expect(await takes(store, 6, BIG)).toContain("k0");
    });

    it("climbs the pair's own ladder and starts it over after a success on the model", async () => {
      const { store, clock } = await h.openStore(settings(), keys(2));
      await store.release({ id: "k0" }, { ok: false, status: 429, model: BIG });
      clock.advance(MIN);
      await store.release({ id: "k0" }, { ok: false, status: 429, model: BIG });
      expect((await statusOf(store, "k0")).models[BIG]).toMatchObject({ until: clock.now() + 5 * MIN });
      // The key's own ladder never moved.
      expect(await statusOf(store, "k0")).toMatchObject({ failClass: null, rung: 0 });
      clock.advance(5 * MIN);
      await store.release({ id: "k0" }, { ok: true, model: BIG });
      await store.release({ id: "k0" }, { ok: false, status: 429, model: BIG });
      expect((await statusOf(store, "k0")).models[BIG]).toMatchObject({ until: clock.now() + MIN });
    });

    it("rests the whole key on an auth failure, whatever the model", async () => {
      const { store } = await h.openStore(settings(), keys(2));
      await store.release({ id: "k0" }, { ok: false, status: 401, model: BIG });
      expect(await statusOf(store, "k0")).toMatchObject({ state: "quarantined", failClass: "auth" });
      expect(await takes(store, 4, SMALL)).not.toContain("k0");
    });

    it("follows failure_policy: a rate limit scoped to the key rests it for every model", async () => {
      const { store } = await h.openStore(settings({ failurePolicy: { rate_limit: { scope: "key" } } }), keys(2));
      await store.release({ id: "k0" }, { ok: false, status: 429, model: BIG });
      expect(await statusOf(store, "k0")).toMatchObject({ state: "cooling", models: {} });
      expect(await takes(store, 4, SMALL)).not.toContain("k0");
    });

    it("marks a pair denied when the answer says the key cannot use the model, and says to retry elsewhere", async () => {
      const { store, clock } = await h.openStore(settings({ modelAccessRestSec: 2 * 3600 }), keys(2));
      const lease = await store.take("default", { model: BIG });
      const result = await store.release(
        { lease: lease.lease },
        { ok: false, status: 404, body: DENIED_BODY, model: BIG },
      );
      expect(result.modelDenied).toBe(true);
      const denied = lease.id;
      expect(await statusOf(store, denied)).toMatchObject({
        errors: 0,
        failClass: null,
        models: { [BIG]: { state: "denied", until: clock.now() + 2 * HOUR } },
      });
      expect(await takes(store, 4, BIG)).not.toContain(denied);
      expect(await takes(store, 4, SMALL)).toContain(denied);
      clock.advance(2 * HOUR);
      expect(await takes(store, 4, BIG)).toContain(denied);
    });

    it("recognises the pool's own model_access rules", async () => {
      const modelAccess = compileAccessRules({ rules: [{ status: [400], body: "tier does not include" }] });
      const { store } = await h.openStore(settings({ modelAccess }), keys(2));
      const result = await store.release(
        { id: "k0" },
        { ok: false, status: 400, body: "your tier does not include m-big", model: BIG },
      );
      expect(result.modelDenied).toBe(true);
      expect((await statusOf(store, "k0")).models[BIG]?.state).toBe("denied");
    });

    it("gives a denied pair its access back when a health check that names the model succeeds", async () => {
      const { store } = await h.openStore(settings(), keys(2));
      await store.release({ id: "k0" }, { ok: false, status: 404, body: DENIED_BODY, model: BIG });
      expect(await takes(store, 4, BIG)).not.toContain("k0");
      await store.recordCheck("default", "k0", { ok: true, latencyMs: 5, reason: "ok", model: BIG });
      expect((await statusOf(store, "k0")).models).toEqual({});
      expect(await takes(store, 4, BIG)).toContain("k0");
    });

    it("never hands a key restricted to other models out for a model it does not list", async () => {
      const list: KeyInput[] = keys(3).map((k, i) => (i === 0 ? { ...k, models: [SMALL] } : k));
      const { store } = await h.openStore(settings(), list);
      expect(await takes(store, 9, BIG)).not.toContain("k0");
      expect(await takes(store, 9, SMALL)).toContain("k0");
      expect(await statusOf(store, "k0")).toMatchObject({ onlyModels: [SMALL] });
      expect(await statusOf(store, "k1")).toMatchObject({ onlyModels: null });
    });

    it("answers NO_KEY_AVAILABLE for a model no key may serve, with the soonest pair's end as the retry", async () => {
      const { store, clock } = await h.openStore(settings(), keys(2));
      await store.release({ id: "k0" }, { ok: false, status: 429, model: BIG, retryAfterMs: 2 * MIN });
      await store.release({ id: "k1" }, { ok: false, status: 429, model: BIG, retryAfterMs: 3 * MIN });
      const error = await noKey(store.take("default", { model: BIG }));
      expect(error.retryAfterMs).toBe(2 * MIN);
      expect(error.message).toContain(BIG);
      expect(await takes(store, 2, SMALL)).toHaveLength(2);
      clock.advance(2 * MIN);
      expect((await store.take("default", { model: BIG })).id).toBe("k0");
    });

    it("applies a pair's rest from the lease's model when the release names none", async () => {
      const { store } = await h.openStore(settings(), keys(1));
      const lease = await store.take("default", { model: BIG });
      await store.release({ lease: lease.lease }, { ok: false, status: 429 });
      expect((await statusOf(store, "k0")).models[BIG]?.state).toBe("cooling");
      expect(await takes(store, 2, SMALL)).toEqual(["k0", "k0"]);
    });

    it("counts model_limits per (key, model): a spent rpm rests only that pair", async () => {
      const { store, clock } = await h.openStore(settings({ modelLimits: { [BIG]: { rpm: 2 } } }), keys(1));
      expect(await takes(store, 2, BIG)).toEqual(["k0", "k0"]);
      await noKey(store.take("default", { model: BIG }));
      expect(await takes(store, 3, SMALL)).toEqual(["k0", "k0", "k0"]);
      clock.advance(MIN);
      expect(await takes(store, 1, BIG)).toEqual(["k0"]);
    });

    it("counts model_limits tpm from the release's tokens", async () => {
      const { store } = await h.openStore(settings({ modelLimits: { [BIG]: { tpm: 1000 } } }), keys(1));
      const lease = await store.take("default", { model: BIG });
      await store.release({ lease: lease.lease }, { ok: true, model: BIG, tokens: 1500 });
      await noKey(store.take("default", { model: BIG }));
      expect(await takes(store, 1, SMALL)).toEqual(["k0"]);
    });

    it("rests the same pair on every key of the group on a rate limit", async () => {
      const group = (i: number) => (i < 2 ? "acme" : undefined);
      const { store } = await h.openStore(settings(), keys(3, { group }));
      await store.release({ id: "k0" }, { ok: false, status: 429, model: BIG, retryAfterMs: MIN });
      expect(await takes(store, 4, BIG)).toEqual(["k2", "k2", "k2", "k2"]);
      expect(new Set(await takes(store, 6, SMALL))).toEqual(new Set(["k0", "k1", "k2"]));
    });

    it("records the pair's transitions as events naming the model, not as the key's", async () => {
      const { store, clock } = await h.openStore(settings(), keys(2));
      await store.release({ id: "k0" }, { ok: false, status: 429, model: BIG });
      const events = await store.events({ key: "k0", limit: 10 });
      expect(events).toEqual([
        {
          at: clock.now(),
          pool: "default",
          key: "k0",
          model: BIG,
          from: "ready",
          to: "cooling",
          class: "rate_limit",
          reason: "rate_limit (HTTP 429); rung 1, resting 1m",
          until: clock.now() + MIN,
        },
      ]);
    });

    it("forgets a pair once its rest is over and the model succeeds again", async () => {
      const { store, clock } = await h.openStore(settings(), keys(1));
      await store.release({ id: "k0" }, { ok: false, status: 429, model: BIG });
      clock.advance(MIN);
      expect((await statusOf(store, "k0")).models).toEqual({});
      await takes(store, 1, BIG);
      expect((await statusOf(store, "k0")).models).toEqual({});
    });

    it("shows a pair's rest to every process sharing the store at its next take", async () => {
      const backing = await h.backing();
      const { store: a, clock } = await h.openStore(settings(), keys(2), { backing });
      const { store: b } = await h.openStore(settings(), keys(2), { backing, clock });
      // Warm b's copy of the pool first, so the test sees it notice the change, not load it.
      await takes(b, 2, BIG);
      await a.release({ id: "k0" }, { ok: false, status: 429, model: BIG });
      expect(await takes(b, 4, BIG)).toEqual(["k1", "k1", "k1", "k1"]);
      expect(await takes(b, 4, SMALL)).toContain("k0");
    });

    it("takes as before when the request names no model, whatever pairs rest", async () => {
      const { store } = await h.openStore(settings(), keys(2));
      await store.release({ id: "k0" }, { ok: false, status: 429, model: BIG });
      await store.release({ id: "k1" }, { ok: false, status: 429, model: BIG });
      expect(new Set(await takes(store, 4))).toEqual(new Set(["k0", "k1"]));
      await store.release({ id: "k0" }, { ok: false, status: 429 });
      expect(await statusOf(store, "k0")).toMatchObject({ state: "cooling", failClass: "rate_limit" });
    });
  });
}
