import { describe, expect, it } from "bun:test";
import { ManualClock } from "../../src/pool/clock";
import { DAY_MS, EMPTY_WINDOWS, MINUTE_MS, type UsageWindows, countRequest, countTokens } from "../../src/pool/limits";

describe("countRequest", () => {
  it("rests a key at its rpm until the minute window that began with its first request closes", () => {
    const clock = new ManualClock();
    const start = clock.now();
    let w: UsageWindows = EMPTY_WINDOWS;
    const rests: Array<number | undefined> = [];
    for (let i = 0; i < 3; i++) {
      const counted = countRequest(w, { rpm: 3 }, clock.now());
      w = counted.windows;
      rests.push(counted.rest?.until);
      clock.advance(10_000);
    }
    expect(rests).toEqual([undefined, undefined, start + MINUTE_MS]);
  });

  it("opens a new window once the old one has closed", () => {
    const clock = new ManualClock();
    const w = countRequest(EMPTY_WINDOWS, { rpm: 2 }, clock.now()).windows;
    clock.advance(MINUTE_MS);
    const next = countRequest(w, { rpm: 2 }, clock.now());
    expect([next.windows.minuteStart, next.windows.minuteRequests, next.rest]).toEqual([clock.now(), 1, undefined]);
  });

  it("rests a key at its daily_requests until the day window closes", () => {
    const clock = new ManualClock();
    const start = clock.now();
    let w: UsageWindows = EMPTY_WINDOWS;
    let rest: ReturnType<typeof countRequest>["rest"];
    for (let i = 0; i < 5; i++) {
      ({ windows: w, rest } = countRequest(w, { dailyRequests: 5 }, clock.now()));
      clock.advance(2 * MINUTE_MS);
    }
    expect(rest).toEqual({
      until: start + DAY_MS,
      reason: "daily_requests limit (5) reached; resting until the day window closes",
    });
    expect(w.dayRequests).toBe(5);
  });
});

describe("countTokens", () => {
  it("rests a key once the tokens reported in a minute reach tpm", () => {
    const clock = new ManualClock();
    const start = clock.now();
    const first = countTokens(EMPTY_WINDOWS, 600, { tpm: 1000 }, clock.now());
    clock.advance(20_000);
    const second = countTokens(first.windows, 500, { tpm: 1000 }, clock.now());
    expect([first.rest, second.windows.minuteTokens, second.rest?.until]).toEqual([undefined, 1100, start + MINUTE_MS]);
  });

  it("counts without resting when the pool sets no tpm", () => {
    expect(countTokens(EMPTY_WINDOWS, 1e9, {}, 0).rest).toBeUndefined();
  });
});
