import { describe, expect, it } from "bun:test";
import { EMPTY_SPEND, planSpend } from "../../src/pool/budget";
import { planCapsChange } from "../../src/pool/plan-budget";
import { liveKey } from "./_key-facts";

const NOON = Date.UTC(2026, 1, 10, 12);
const MIDNIGHT = Date.UTC(2026, 1, 11);
const ctx = { now: NOON, random: () => 0.5, initialRank: () => 1 };
/** $0.0015 spent today. */
const spend = planSpend(EMPTY_SPEND, 1500, false, undefined, NOON).spend;

describe("planCapsChange", () => {
  it("rests the key until the reset when what it spent already reaches its new cap", () => {
    const plan = planCapsChange(liveKey({ spend, budget: { dayMicros: 1000 } }), ctx);
    expect(plan).toEqual({
      condition: { health: "live", reason: "budget: $0.0015 of $0.001 today", readyAt: MIDNIGHT },
      takeable: true,
      rank: 10,
      event: { from: "live", to: "cooling", class: null, reason: "budget: $0.0015 of $0.001 today", until: MIDNIGHT },
    });
  });

  it("changes nothing while the new cap leaves room, or for a key resting for another reason", () => {
    expect(planCapsChange(liveKey({ spend, budget: { dayMicros: 2000 } }), ctx)).toBeNull();
    const limited = { health: "live" as const, reason: "rate limited (429)", readyAt: NOON + 60_000 };
    expect(planCapsChange(liveKey({ spend, condition: limited }), ctx)).toBeNull();
  });

  it("ends a rest its old cap imposed once the new caps leave room (raised or removed)", () => {
    const resting = { health: "live" as const, reason: "budget: $0.0015 of $0.001 today", readyAt: MIDNIGHT };
    for (const budget of [{ dayMicros: 5000 }, undefined]) {
      expect(planCapsChange(liveKey({ spend, budget, condition: resting }), ctx)).toMatchObject({
        condition: { health: "live", readyAt: 0, reason: "spend cap raised" },
        event: { from: "cooling", to: "live" },
      });
    }
  });
});
