import { describe, expect, it } from "bun:test";
import { parsePoolctlState } from "../src/store/poolctl-state";

const NEVER = "0001-01-01T00:00:00Z";

describe("parsePoolctlState", () => {
  it("maps each of poolctl's statuses, its rest and its counters to keypool's terms", () => {
    const entry = (status: string, cooling_until = NEVER) => ({
      id: status,
      weight: 5,
      status,
      last_check: "2026-12-01T10:00:00.123456789Z",
      last_used: NEVER,
      cooling_until,
      fails: 2,
      requests: 9,
      errors: 3,
      last_status: 429,
    });
    const until = "2026-12-01T11:00:00Z";
    const states = parsePoolctlState(
      JSON.stringify([
        entry("live", until),
        entry("unknown"),
        entry("quarantined", until),
        entry("dead", until),
        entry("err"),
      ]),
    );
    expect(states.map((s) => [s.id, s.condition])).toEqual([
      ["live", { health: "live", reason: "resting (carried over from poolctl)", readyAt: Date.parse(until) }],
      ["unknown", { health: "unknown", reason: null, readyAt: 0 }],
      [
        "quarantined",
        { health: "quarantined", reason: "quarantined (carried over from poolctl)", readyAt: Date.parse(until) },
      ],
      // Dead waits for a probe, not for a clock.
      ["dead", { health: "dead", reason: "dead (carried over from poolctl)", readyAt: 0 }],
      // A status this version does not know: nothing is assumed about the key.
      ["err", { health: "unknown", reason: null, readyAt: 0 }],
    ]);
    expect(states[0]).toMatchObject({
      lastCheck: Date.parse("2026-12-01T10:00:00.123Z"),
      lastUsed: null,
      requests: 9,
      errors: 3,
      consecutiveFailures: 2,
      lastCheckStatus: 429,
    });
  });

  it("skips entries without an id and reads fields of the wrong type as absent", () => {
    const states = parsePoolctlState(
      '[null, 3, {"weight": 1}, {"id": "a", "requests": "many", "fails": -1, "last_check": 5}]',
    );
    expect(states).toEqual([
      {
        id: "a",
        condition: { health: "unknown", reason: null, readyAt: 0 },
        lastCheck: null,
        lastUsed: null,
        requests: 0,
        errors: 0,
        consecutiveFailures: 0,
        lastCheckStatus: null,
      },
    ]);
  });

  it("throws on text that is not JSON, or not a list", () => {
    expect(() => parsePoolctlState("SQLite format 3")).toThrow(SyntaxError);
    expect(() => parsePoolctlState('{"tokens": []}')).toThrow(TypeError);
  });
});
