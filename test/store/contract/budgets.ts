import { describe, expect, it } from "bun:test";
import { DomainError } from "../../../src/pool/errors";
import type { KeyInput, PoolStore } from "../../../src/store/types";
import { type Harness, failure, keys, settings } from "./_harness";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** One input token costs one micro-dollar; an output token two. */
const prices = { m: { inputPerMtok: 1, outputPerMtok: 2 } };
/** A request of `input` tokens of model m: that many micro-dollars. */
const costing = (input: number) => ({ ok: true, model: "m", usage: { input, output: 0 } });

async function spendOn(store: PoolStore, id: string, input: number): Promise<void> {
  await store.release({ id }, costing(input));
}

const capped = (i: number, caps: KeyInput["budget"]) => (k: KeyInput, j: number) =>
  j === i ? { ...k, budget: caps } : k;

export function budgetsContract(h: Harness): void {
  describe("spend caps", () => {
    it("rests a key that reaches its daily cap until 00:00 UTC, with the spend in its reason", async () => {
      const list = keys(2).map(capped(0, { dayMicros: 1000 }));
      const { store, clock } = await h.openStore(settings({ prices }), list);
      clock.advance(10 * HOUR);
      await spendOn(store, "k0", 600);
      expect((await store.status()).find((k) => k.id === "k0")).toMatchObject({ state: "live" });
      await spendOn(store, "k0", 600);
      const k0 = (await store.status()).find((k) => k.id === "k0")!;
      expect(k0).toMatchObject({
        state: "cooling",
        reason: "budget: $0.0012 of $0.001 today",
        until: DAY + clock.now() - 10 * HOUR,
      });
      expect(k0.spend?.day).toMatchObject({ spentMicros: 1200, capMicros: 1000, unpriced: 0 });
      for (let i = 0; i < 4; i++) expect((await store.take("default")).id).toBe("k1");
      clock.set(k0.until!);
      const ids = new Set<string>();
      for (let i = 0; i < 4; i++) ids.add((await store.take("default")).id);
      expect(ids).toContain("k0");
      expect((await store.status()).find((k) => k.id === "k0")!.spend?.day.spentMicros).toBe(0);
    });

    it("refuses takes with BUDGET_EXHAUSTED once the pool's total reaches its cap, until the window resets", async () => {
      const { store, clock } = await h.openStore(settings({ prices, budget: { dayMicros: 1000 } }), keys(3));
      clock.advance(6 * HOUR);
      await spendOn(store, "k0", 500);
      await spendOn(store, "k1", 499);
      await store.take("default");
      await spendOn(store, "k2", 1);
      const error = await failure(store.take("default"));
      expect(error).toBeInstanceOf(DomainError);
      expect(error.code).toBe("BUDGET_EXHAUSTED");
      expect(error.retryAfterMs).toBe(18 * HOUR);
      expect(error.message).toContain("budget: $0.001 of $0.001 today");
      expect(await store.poolSpend("default")).toMatchObject({ day: { spentMicros: 1000, capMicros: 1000 } });
      clock.advance(18 * HOUR);
      expect((await store.take("default")).pool).toBe("default");
    });

    it("counts the monthly window to the 1st of next month", async () => {
      const { store, clock } = await h.openStore(settings({ prices, budget: { monthMicros: 100 } }), keys(1));
      await spendOn(store, "k0", 100);
      const error = await failure(store.take("default"));
      expect(error.retryAfterMs).toBe(Date.UTC(2026, 1, 1) - clock.now());
      expect(error.message).toContain("this month");
    });

    it("stops two processes sharing the store together", async () => {
      const backing = await h.backing();
      const pool = settings({ prices, budget: { dayMicros: 1000 } });
      const list = keys(2).map(capped(1, { dayMicros: 300 }));
      const { store: a, clock } = await h.openStore(pool, list, { backing });
      const { store: b } = await h.openStore(pool, list, { backing, clock });
      // b's copy of the pool is warm before a spends.
      await b.release(
        { lease: (await b.take("default")).lease },
        { ok: true, model: "m", usage: { input: 0, output: 0 } },
      );
      await spendOn(a, "k1", 300);
      for (let i = 0; i < 3; i++) {
        const lease = await b.take("default");
        expect(lease.id).toBe("k0");
        await b.release({ lease: lease.lease }, costing(100));
      }
      await spendOn(a, "k0", 400);
      expect((await failure(b.take("default"))).code).toBe("BUDGET_EXHAUSTED");
      expect((await failure(a.take("default"))).code).toBe("BUDGET_EXHAUSTED");
    });

    it("counts a request it cannot price as unpriced, never as $0", async () => {
      const { store } = await h.openStore(settings({ prices, budget: { dayMicros: 1000 } }), keys(1));
      await store.release({ id: "k0" }, { ok: true, model: "unknown-model", usage: { input: 5000, output: 0 } });
      await store.release({ id: "k0" }, { ok: true });
      await store.release({ id: "k0" }, { ok: false, status: 500 });
      expect(await store.poolSpend("default")).toMatchObject({ day: { spentMicros: 0, unpriced: 2 } });
      expect((await store.status())[0]!.spend?.day).toMatchObject({ spentMicros: 0, unpriced: 2 });
    });

    it("logs each threshold once per window, for the alerts", async () => {
      const { store, clock } = await h.openStore(settings({ prices, budget: { dayMicros: 1000 } }), keys(1));
      for (let i = 0; i < 12; i++) await spendOn(store, "k0", 100);
      const alerts = (await store.events({ limit: 50 })).filter((e) => e.alert);
      expect(alerts.map((e) => [e.key, e.alert, e.reason])).toEqual([
        ["", "budget_warning", "budget: $0.0008 of $0.001 today (80% spent)"],
        ["", "budget_exhausted", "budget: $0.001 of $0.001 today (spent; resets in 24h)"],
      ]);
      clock.advance(DAY);
      for (let i = 0; i < 8; i++) await spendOn(store, "k0", 100);
      expect((await store.events({ limit: 50 })).filter((e) => e.alert)).toHaveLength(3);
    });

    it("counts what the ledger already holds when a cap is set during the day", async () => {
      const { store } = await h.openStore(settings({ prices }), keys(1));
      await spendOn(store, "k0", 700);
      await store.syncPools([{ settings: settings({ prices, budget: { dayMicros: 1000 } }), keys: keys(1) }]);
      expect(await store.poolSpend("default")).toMatchObject({ day: { spentMicros: 700 } });
      await spendOn(store, "k0", 300);
      expect((await failure(store.take("default"))).code).toBe("BUDGET_EXHAUSTED");
    });

    it("sets, changes and clears an admin key's own caps: below its spend it rests at once, raised it is back", async () => {
      const { store, clock } = await h.openStore(settings({ prices }), keys(1));
      clock.advance(HOUR);
      const added = await store.addKey("default", {
        id: "api",
        token: "sk-api-budget-0123456789abcdefg",
        weight: 1,
        budget: { dayMicros: 1000 },
      });
      expect(added.budget).toEqual({ dayMicros: 1000 });
      await spendOn(store, "api", 600);
      const lowered = await store.updateKey("default", "api", { budget: { dayMicros: 500 } });
      expect(lowered).toMatchObject({ state: "cooling", reason: "budget: $0.0006 of $0.0005 today" });
      expect((await store.take("default")).id).toBe("k0");
      const raised = await store.updateKey("default", "api", { budget: { dayMicros: 5000, monthMicros: 9000 } });
      expect(raised).toMatchObject({ state: "live", budget: { dayMicros: 5000, monthMicros: 9000 } });
      const cleared = await store.updateKey("default", "api", { budget: { dayMicros: null, monthMicros: null } });
      expect(cleared.budget).toBeUndefined();
      expect((await store.status()).find((k) => k.id === "api")!.spend).toBeNull();
    });

    it("shows no spend for keys and pools without a cap", async () => {
      const { store } = await h.openStore(settings({ prices }), keys(1));
      await spendOn(store, "k0", 700);
      expect((await store.status())[0]!.spend).toBeNull();
      expect(await store.poolSpend("default")).toBeNull();
    });
  });
}
