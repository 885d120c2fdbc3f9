import { describe, expect, it } from "bun:test";
import {
  EMPTY_SPEND,
  budgetCrossings,
  budgetRest,
  currentSpend,
  planSpend,
  usd,
  utcDayStart,
  utcMonthStart,
  windowResetAt,
} from "../../src/pool/budget";

const NOON = Date.UTC(2026, 1, 28, 12);

describe("budget windows", () => {
  it("starts the day at 00:00 UTC and the month on the 1st, and resets at the next ones", () => {
    expect(utcDayStart(NOON)).toBe(Date.UTC(2026, 1, 28));
    expect(utcMonthStart(NOON)).toBe(Date.UTC(2026, 1, 1));
    expect(windowResetAt("day", NOON)).toBe(Date.UTC(2026, 2, 1));
    expect(windowResetAt("month", NOON)).toBe(Date.UTC(2026, 2, 1));
    expect(windowResetAt("month", Date.UTC(2026, 11, 31, 23))).toBe(Date.UTC(2027, 0, 1));
  });

  it("empties a window once it has passed, and keeps the other", () => {
    const spent = planSpend(EMPTY_SPEND, 500, true, undefined, NOON).spend;
    const nextDay = NOON + 24 * 3600_000;
    expect(currentSpend(spent, nextDay)).toMatchObject({ dayMicros: 0, dayUnpriced: 0, monthMicros: 0 });
    const earlier = planSpend(EMPTY_SPEND, 500, false, undefined, Date.UTC(2026, 1, 10)).spend;
    expect(currentSpend(earlier, NOON)).toMatchObject({ dayMicros: 0, monthMicros: 500 });
  });
});

describe("spend against caps", () => {
  const caps = { dayMicros: 10_000_000, monthMicros: 100_000_000 };

  it("rests until the reset of the spent window, naming spend and cap", () => {
    const spend = planSpend(EMPTY_SPEND, 10_020_000, false, caps, NOON);
    expect(spend.rest).toEqual({ until: Date.UTC(2026, 2, 1), reason: "budget: $10.02 of $10.00 today" });
    expect(budgetRest(spend.spend, caps, NOON + 12 * 3600_000)).toBeUndefined();
  });

  it("crosses 80% and 100% once each per window", () => {
    let spend = EMPTY_SPEND;
    const seen: string[] = [];
    for (let i = 0; i < 12; i++) {
      const plan = planSpend(spend, 1_000_000, false, caps, NOON);
      seen.push(...plan.crossings.map((c) => `${c.window}:${c.level}@${i}`));
      spend = plan.spend;
    }
    expect(seen).toEqual(["day:warning@7", "day:exhausted@9"]);
    expect(budgetCrossings(spend, spend, caps, NOON)).toEqual([]);
  });

  it("never counts a cost that is not a finite positive amount", () => {
    for (const bad of [Number.NaN, -5, Number.POSITIVE_INFINITY])
      expect(planSpend(EMPTY_SPEND, bad, false, caps, NOON).spend).toMatchObject({ dayMicros: 0, monthMicros: 0 });
  });

  it("writes small amounts to the micro-dollar and large ones to the cent, rounded up", () => {
    expect([0, 1000, 1200, 999_999, 1_000_000, 10_000_001].map(usd)).toEqual([
      "$0.00",
      "$0.001",
      "$0.0012",
      "$0.999999",
      "$1.00",
      "$10.01",
    ]);
  });
});
