import { describe, expect, it } from "bun:test";
import { DEFAULT_LADDERS, backoffMs, laddersOf, rungRestMs } from "../../src/pool/backoff";
import { ManualClock } from "../../src/pool/clock";
import {
  type KeyCondition,
  type LadderPosition,
  type Outcome,
  type RestPolicy,
  afterOutcome,
  restUntil,
} from "../../src/pool/key-state";

const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const exact = () => 0;

type Key = KeyCondition & LadderPosition;
const freshKey = (): Key => ({ health: "live", reason: null, readyAt: 0, failClass: null, rung: 0, failUntil: 0 });

/**
 * Drives one key through outcomes on a manual clock, each reported the moment the previous rest
 * ended (the next request could only be made then), and returns the rests it was given.
 */
function restsAfter(outcomes: Outcome[], policy: RestPolicy = { cooldownSec: 0 }, random = exact) {
  const clock = new ManualClock();
  let key = freshKey();
  const rests: number[] = [];
  for (const outcome of outcomes) {
    clock.set(Math.max(clock.now(), key.readyAt));
    key = afterOutcome(key, outcome, policy, clock.now(), random);
    rests.push(key.readyAt - clock.now());
  }
  return { rests, key };
}

const times = <T>(n: number, value: T): T[] => Array.from({ length: n }, () => value);

describe("default ladders", () => {
  it("rests a rate-limited key 1 min → 5 → 25 → 60 min, and no longer", () => {
    expect(restsAfter(times(6, { ok: false, status: 429 })).rests).toEqual([
      1 * MIN,
      5 * MIN,
      25 * MIN,
      60 * MIN,
      60 * MIN,
      60 * MIN,
    ]);
  });

  it("rests a key whose quota is spent 5 h → 10 → 20 → 24 h", () => {
    expect(restsAfter(times(5, { ok: false, status: 402 })).rests).toEqual([
      5 * HOUR,
      10 * HOUR,
      20 * HOUR,
      24 * HOUR,
      24 * HOUR,
    ]);
  });

  it("rests an overloaded key 30 s × n up to 5 min", () => {
    const { rests } = restsAfter(times(12, { ok: false, status: 529 }));
    expect(rests).toEqual([30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 300, 300].map((s) => s * SEC));
  });

  it("treats timeouts and network errors like an overloaded upstream", () => {
    expect(restsAfter(times(3, { ok: false, error: "no response within 60s" })).rests).toEqual([
      30 * SEC,
      60 * SEC,
      90 * SEC,
    ]);
    expect(restsAfter(times(3, { ok: false, error: "connection refused" })).rests).toEqual([
      30 * SEC,
      60 * SEC,
      90 * SEC,
    ]);
  });
});

describe("afterOutcome on a ladder", () => {
  it("starts over after a success", () => {
    const { rests, key } = restsAfter([
      { ok: false, status: 429 },
      { ok: false, status: 429 },
      { ok: true },
      { ok: false, status: 429 },
    ]);
    expect(rests).toEqual([1 * MIN, 5 * MIN, 0, 1 * MIN]);
    expect([key.failClass, key.rung]).toEqual(["rate_limit", 1]);
  });

  it("starts a new class's ladder at its first rung", () => {
    const { rests, key } = restsAfter([
      { ok: false, status: 429 },
      { ok: false, status: 429 },
      { ok: false, status: 503 },
    ]);
    expect(rests).toEqual([1 * MIN, 5 * MIN, 30 * SEC]);
    expect([key.failClass, key.rung]).toEqual(["overloaded", 1]);
  });

  it("lets Retry-After replace the first rung, shorter or longer", () => {
    expect(restsAfter([{ ok: false, status: 429, retryAfterMs: 7 * SEC }]).rests).toEqual([7 * SEC]);
    expect(restsAfter([{ ok: false, status: 429, retryAfterMs: 3 * MIN }]).rests).toEqual([3 * MIN]);
  });

  it("keeps the ladder's rest on later rungs unless Retry-After asks for more", () => {
    const { rests } = restsAfter([
      { ok: false, status: 429, retryAfterMs: 7 * SEC },
      { ok: false, status: 429, retryAfterMs: 7 * SEC },
      { ok: false, status: 429, retryAfterMs: 2 * HOUR },
    ]);
    expect(rests).toEqual([7 * SEC, 5 * MIN, 2 * HOUR]);
  });

  it("never shortens a rest already set, and a failure while resting does not climb", () => {
    const clock = new ManualClock();
    let key = afterOutcome(freshKey(), { ok: false, status: 402 }, { cooldownSec: 0 }, clock.now(), exact);
    const quotaUntil = key.readyAt;
    // Requests still in flight when the quota ran out come back failing too.
    clock.advance(10 * SEC);
    key = afterOutcome(key, { ok: false, status: 402 }, { cooldownSec: 0 }, clock.now(), exact);
    clock.advance(10 * SEC);
    key = afterOutcome(key, { ok: false, status: 429 }, { cooldownSec: 0 }, clock.now(), exact);
    expect(key.readyAt).toBe(quotaUntil);
    expect(key.readyAt - clock.now()).toBe(5 * HOUR - 20 * SEC);
  });

  it("counts a burst of failures from requests already in flight as one rung", () => {
    const clock = new ManualClock();
    let key = freshKey();
    for (let i = 0; i < 10; i++) {
      key = afterOutcome(key, { ok: false, status: 429 }, { cooldownSec: 0 }, clock.now(), exact);
      clock.advance(SEC);
    }
    expect([key.rung, key.readyAt - clock.now()]).toEqual([1, 1 * MIN - 10 * SEC]);
  });

  it("jitters a ladder rest only downwards, by at most 10%, so the cap holds", () => {
    const almostOne = () => 0.999_999;
    expect(
      restsAfter(times(5, { ok: false, status: 429 }), undefined, almostOne).rests.map((ms) => Math.round(ms / SEC)),
    ).toEqual([54, 270, 1350, 3240, 3240]);
  });

  it("adds upstream.cooldown_sec as a floor to a ladder rest", () => {
    expect(restsAfter([{ ok: false, status: 429, retryAfterMs: SEC, minRestMs: 20 * SEC }]).rests).toEqual([20 * SEC]);
  });

  it("classifies with the pool's own rules", () => {
    const policy: RestPolicy = { cooldownSec: 0, classify: [{ status: [400], body: "spend limit", class: "quota" }] };
    expect(restsAfter([{ ok: false, status: 400, body: "monthly spend limit reached" }], policy).rests).toEqual([
      5 * HOUR,
    ]);
  });

  it("takes the caller's class over classification", () => {
    const { key } = restsAfter([{ ok: false, status: 500, class: "quota" }]);
    expect([key.failClass, key.readyAt]).toEqual(["quota", Date.UTC(2026, 0, 1) + 5 * HOUR]);
  });

  it("quarantines on auth failures and climbs no ladder", () => {
    const { key } = restsAfter([{ ok: false, status: 401 }]);
    expect(key).toMatchObject({ health: "quarantined", readyAt: 0, failClass: "auth", rung: 1 });
  });

  it("uses the pool's ladders", () => {
    const ladders = laddersOf({ rate_limit: { baseSec: 10, factor: 2, maxSec: 30 } });
    expect(restsAfter(times(4, { ok: false, status: 429 }), { cooldownSec: 0, ladders }).rests).toEqual([
      10 * SEC,
      20 * SEC,
      30 * SEC,
      30 * SEC,
    ]);
  });
});

describe("laddersOf", () => {
  it("keeps the defaults for classes a pool does not mention", () => {
    expect(laddersOf(undefined)).toBe(DEFAULT_LADDERS);
    expect(laddersOf({ quota: { maxSec: 7200 } })).toEqual({
      ...DEFAULT_LADDERS,
      quota: { baseSec: 18_000, factor: 2, maxSec: 7200 },
    });
  });

  it("switches a ladder to linear when step_sec is given, and to exponential with factor", () => {
    const ladders = laddersOf({ rate_limit: { stepSec: 60 }, overloaded: { factor: 3 } });
    expect(ladders.rate_limit).toEqual({ baseSec: 60, stepSec: 60, maxSec: 3600 });
    expect(ladders.overloaded).toEqual({ baseSec: 30, factor: 3, maxSec: 300 });
    expect([1, 2, 3].map((n) => rungRestMs(ladders.overloaded, n))).toEqual([30 * SEC, 90 * SEC, 270 * SEC]);
  });
});

describe("backoffMs", () => {
  it("returns Retry-After untouched on the first rung, without jitter", () => {
    expect(backoffMs(DEFAULT_LADDERS.rate_limit, 1, () => 0.5, 1234)).toBe(1234);
  });
});

describe("restUntil", () => {
  const now = 1_000;
  it("rests a healthy key and never shortens", () => {
    const key: KeyCondition = { health: "live", reason: null, readyAt: 0 };
    const rested = restUntil(key, now + 5000, "group", now);
    expect(rested).toEqual({ health: "live", reason: "group", readyAt: now + 5000 });
    expect(restUntil(rested, now + 10, "shorter", now)).toBe(rested);
  });

  it("leaves quarantined, dead and disabled keys as they are", () => {
    for (const health of ["quarantined", "dead", "disabled"] as const) {
      const key: KeyCondition = { health, reason: "x", readyAt: 0 };
      expect(restUntil(key, now + 5000, "group", now)).toBe(key);
    }
  });
});
