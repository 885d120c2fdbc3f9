import { describe, expect, it } from "bun:test";
import {
  afterCheck,
  afterOutcome,
  afterTake,
  type KeyCondition,
  setDisabled,
  stateOf,
  untilOf,
} from "../../src/pool/key-state";

const NOW = 1_000_000;
const fresh: KeyCondition = { health: "unknown", reason: null, readyAt: 0 };
const policy = { cooldownSec: 30 };

describe("stateOf", () => {
  it("calls a healthy key cooling until its rest ends, then healthy again without any write", () => {
    const resting: KeyCondition = { health: "live", reason: "resting after take", readyAt: NOW + 5000 };
    expect([stateOf(resting, NOW), untilOf(resting, NOW)]).toEqual(["cooling", NOW + 5000]);
    expect([stateOf(resting, NOW + 5000), untilOf(resting, NOW + 5000)]).toEqual(["live", null]);
  });

  it("never calls a quarantined, dead or disabled key cooling", () => {
    for (const health of ["quarantined", "dead", "disabled"] as const) {
      expect(stateOf({ health, reason: null, readyAt: NOW + 1 }, NOW)).toBe(health);
    }
  });
});

describe("afterTake", () => {
  it("rests the key for cooldown_sec", () => {
    expect(afterTake(fresh, policy, NOW)).toEqual({
      health: "unknown",
      reason: "resting after take",
      readyAt: NOW + 30_000,
    });
  });

  it("changes nothing when cooldown_sec is 0", () => {
    expect(afterTake(fresh, { cooldownSec: 0 }, NOW)).toBe(fresh);
  });
});

describe("afterOutcome", () => {
  const exact = () => 0;
  const clean = { failClass: null, rung: 0, failUntil: 0 };

  it("marks a key live on success, keeps a rest that is still running and resets the ladder", () => {
    const resting = {
      health: "unknown" as const,
      reason: "resting after take",
      readyAt: NOW + 10,
      failClass: "rate_limit" as const,
      rung: 3,
      failUntil: NOW - 1,
    };
    expect(afterOutcome(resting, { ok: true }, policy, NOW)).toEqual({
      health: "live",
      reason: "resting after take",
      readyAt: NOW + 10,
      ...clean,
    });
    expect(afterOutcome(fresh, { ok: true }, policy, NOW)).toEqual({
      health: "live",
      reason: null,
      readyAt: 0,
      ...clean,
    });
  });

  it.each([401, 403])("quarantines on HTTP %i", (status) => {
    expect(afterOutcome(fresh, { ok: false, status }, policy, NOW)).toEqual({
      health: "quarantined",
      reason: `auth failure (HTTP ${status}); waiting for a health check`,
      readyAt: 0,
      failClass: "auth",
      rung: 1,
      failUntil: 0,
      class: "auth",
    });
  });

  // Changed deliberately with failure classes: a 429 rests for the rate_limit ladder's first rung
  // (1 min), not cooldown_sec; cooldown_sec remains the rest for failures nobody can classify.
  it("cools a key on its class's ladder, and an unclassified failure for cooldown_sec", () => {
    expect(afterOutcome(fresh, { ok: false, status: 429 }, policy, NOW, exact)).toEqual({
      health: "unknown",
      reason: "rate_limit (HTTP 429); rung 1, resting 1m",
      readyAt: NOW + 60_000,
      failClass: "rate_limit",
      rung: 1,
      failUntil: NOW + 60_000,
      class: "rate_limit",
    });
    expect(afterOutcome(fresh, { ok: false }, policy, NOW)).toEqual({
      health: "unknown",
      reason: "cooling after reported failure",
      readyAt: NOW + 30_000,
      ...clean,
    });
  });

  it("never shortens a rest already set", () => {
    const long: KeyCondition = { health: "live", reason: "x", readyAt: NOW + 3_600_000 };
    expect(afterOutcome(long, { ok: false, status: 503 }, policy, NOW).readyAt).toBe(NOW + 3_600_000);
  });

  it("records an unclassified failure without resting when cooldown_sec is 0", () => {
    expect(afterOutcome(fresh, { ok: false }, { cooldownSec: 0 }, NOW)).toEqual({
      health: "unknown",
      reason: "failed (reported failure)",
      readyAt: 0,
      ...clean,
    });
  });

  it("leaves the key alone on a client error: a prompt too long is not the key's fault", () => {
    const live: KeyCondition = { health: "live", reason: null, readyAt: 0 };
    const body =
      '{"error":{"message":"This model\'s maximum context length is 8192 tokens.","code":"context_length_exceeded"}}';
    expect(afterOutcome(live, { ok: false, status: 400, body }, policy, NOW)).toEqual({
      ...live,
      ...clean,
      class: "client",
    });
  });

  it("does not turn a quarantine that waits for a probe into a timed one", () => {
    const quarantined: KeyCondition = { health: "quarantined", reason: "auth", readyAt: 0 };
    expect(afterOutcome(quarantined, { ok: false, status: 503 }, policy, NOW, exact)).toMatchObject({
      health: "quarantined",
      readyAt: 0,
    });
  });
});

describe("afterCheck", () => {
  const checkPolicy = { cooldownSec: 30, failuresToDead: 3 };

  it("revives a quarantined key when a probe succeeds", () => {
    const quarantined: KeyCondition = { health: "quarantined", reason: "auth", readyAt: 0 };
    expect(afterCheck(quarantined, { ok: true, reason: "ok" }, 2, checkPolicy, NOW)).toEqual({
      condition: { health: "live", reason: "revived by health check", readyAt: 0 },
      consecutiveFailures: 0,
    });
  });

  it("declares a key dead after failures_to_dead failures in a row, not before", () => {
    const failing = { ok: false, reason: "timeout after 10s" };
    expect(afterCheck(fresh, failing, 1, checkPolicy, NOW).condition.health).toBe("unknown");
    expect(afterCheck(fresh, failing, 2, checkPolicy, NOW)).toEqual({
      condition: { health: "dead", reason: "health check failed 3 times: timeout after 10s", readyAt: 0 },
      consecutiveFailures: 3,
    });
  });

  it("rests a rate-limited key for Retry-After", () => {
    const limited = afterCheck(
      fresh,
      { ok: false, status: 429, reason: "HTTP 429", retryAfterSec: 7 },
      0,
      checkPolicy,
      NOW,
    );
    expect(limited.condition.readyAt).toBe(NOW + 7000);
  });

  it("leaves a disabled key disabled whatever the probe says", () => {
    const disabled = setDisabled(fresh, true);
    expect(afterCheck(disabled, { ok: true, reason: "ok" }, 0, checkPolicy, NOW).condition).toBe(disabled);
  });
});
