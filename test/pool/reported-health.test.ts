import { describe, expect, it } from "bun:test";
import { type KeyCondition, afterOutcome, stateOf } from "../../src/pool/key-state";
import { REPORTED_REST_MS, outcomeOfReport, reportedHealthOf } from "../../src/pool/reported-health";

const NOW = 1_000_000;
const fresh: KeyCondition = { health: "unknown", reason: null, readyAt: 0 };
// A pool with a quarantine timer: a failed report must not turn into a timed wait even so.
const policy = { cooldownSec: 0, quarantineSec: 300 };
const exact = () => 0;

describe("outcomeOfReport", () => {
  it.each([
    ["healthy", null, { ok: true }],
    ["degraded", null, { ok: false, class: "overloaded", verdict: { restMs: 300_000, reason: "reported degraded" } }],
    [
      "rate_limited",
      "",
      { ok: false, class: "rate_limit", verdict: { restMs: 900_000, reason: "reported rate_limited" } },
    ],
    [
      "failed",
      undefined,
      { ok: false, class: "auth", verdict: { restMs: null, reason: expect.stringContaining("reported failed") } },
    ],
    [
      "failed",
      "Rate limit reached for gpt-4",
      {
        ok: false,
        class: "rate_limit",
        body: "Rate limit reached for gpt-4",
        verdict: { restMs: null, reason: expect.any(String) },
      },
    ],
  ] as const)("reads %s (error %p)", (status, error, expected) => {
    expect(outcomeOfReport(status, error)).toEqual(expected as never);
  });
});

describe("a reported health applied to a key", () => {
  const apply = (key: KeyCondition, status: Parameters<typeof outcomeOfReport>[0], now = NOW) =>
    afterOutcome(key, outcomeOfReport(status), policy, now, exact);

  it.each([
    ["degraded", REPORTED_REST_MS.degraded],
    ["rate_limited", REPORTED_REST_MS.rate_limited],
  ] as const)("rests the key for exactly %s's time, and it comes back by itself", (status, restMs) => {
    const after = apply(fresh, status);
    expect([stateOf(after, NOW + restMs - 1), stateOf(after, NOW + restMs)]).toEqual(["cooling", "unknown"]);
    expect(after.reason).toBe(`reported ${status}; back in ${restMs / 60_000}m`);
  });

  it("rests a rate_limited key the same 15 minutes on the third report in a row", () => {
    let key = { ...fresh, failClass: null, rung: 0, failUntil: 0 } as ReturnType<typeof apply>;
    let now = NOW;
    for (let i = 0; i < 3; i++) {
      key = apply(key, "rate_limited", now);
      now += REPORTED_REST_MS.rate_limited;
    }
    expect([key.readyAt, key.rung]).toEqual([now, 3]);
  });

  it("keeps a failed key out with no end, until a success", () => {
    const failed = apply(fresh, "failed");
    expect([failed.health, failed.readyAt, stateOf(failed, NOW + 365 * 86_400_000)]).toEqual([
      "quarantined",
      0,
      "quarantined",
    ]);
    expect(apply(failed, "healthy").health).toBe("live");
    // A rest is no way back for a key that is out.
    expect(apply(failed, "degraded").health).toBe("quarantined");
  });

  it("never overrides an operator's switch", () => {
    const disabled: KeyCondition = { health: "disabled", reason: "disabled by operator", readyAt: 0 };
    for (const status of ["degraded", "rate_limited", "failed"] as const)
      expect(apply(disabled, status).health).toBe("disabled");
  });
});

describe("reportedHealthOf", () => {
  it.each([
    ["live", null, "healthy"],
    ["unknown", null, "healthy"],
    ["cooling", null, "healthy"],
    ["cooling", "rate_limit", "rate_limited"],
    ["cooling", "quota", "rate_limited"],
    ["cooling", "overloaded", "degraded"],
    ["quarantined", "auth", "failed"],
    ["dead", null, "failed"],
    ["disabled", null, "failed"],
  ] as const)("reads a %s key (last failure %p) as %s", (state, failClass, expected) => {
    expect(reportedHealthOf({ state, failClass })).toBe(expected);
  });
});
