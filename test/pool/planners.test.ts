import { describe, expect, it } from "bun:test";
import { chooseKey } from "../../src/pool/choose-key";
import type { DecisionContext, PoolRules } from "../../src/pool/key-facts";
import { CLEAN_LADDER, type Outcome } from "../../src/pool/key-state";
import { liveKey } from "./_key-facts";
import { planCheck, planEnabled, planRefreshFailed, planRefreshed } from "../../src/pool/plan-check";
import { planGroupRest, planRelease } from "../../src/pool/plan-release";
import { planTake, takeNeedsArbitration } from "../../src/pool/plan-take";
import { FULL_BUDGET, LOWEST_RANK, type RankContext } from "../../src/pool/rotation";
import { ROTATIONS, type Rotation } from "../../src/pool/vocabulary";

const NOW = 1_000_000;

const key = liveKey;

function pool(overrides: Partial<PoolRules> = {}): PoolRules {
  return { name: "p", rotation: "lru", cooldownSec: 0, recheckIntervalSec: 300, ...overrides };
}

const rankContext: RankContext = { now: NOW, random: () => 0.5, maxRank: 50, virtualTime: 20 };
const ctx: DecisionContext = { now: NOW, random: () => 0, initialRank: () => -1 };

describe("planTake", () => {
  const ranks: Record<Rotation, number> = {
    lru: NOW,
    round_robin: 51,
    random: 0.5,
    weighted: 20 + 1 / 2,
    most_remaining: 11,
    least_busy: 1e13 + NOW,
  };
  it.each(ROTATIONS.map((r) => [r]))("ranks the taken key for %s", (rotation) => {
    const plan = planTake(key({ weight: 2 }), pool({ rotation }), rankContext);
    expect(plan.rank).toBe(ranks[rotation]);
    expect(plan.inFlight).toBe(1);
    expect(plan.condition).toEqual({ health: "live", reason: null, readyAt: 0 });
    expect(plan.windows).toBeUndefined();
  });

  it("rests the key after each take when the pool has cooldown_sec", () => {
    const plan = planTake(key(), pool({ cooldownSec: 5 }), rankContext);
    expect(plan.condition).toMatchObject({ readyAt: NOW + 5000, reason: "resting after take" });
  });

  it.each([
    ["rpm", { rpm: 2 }, NOW + 60_000],
    ["daily_requests", { dailyRequests: 2 }, 86_400_000],
  ] as const)(
    "counts the take against %s and rests the key that uses it up (windows open at the first request)",
    (_, limits, until) => {
      const first = planTake(key({ limits }), pool(), rankContext);
      expect(first.windows).toMatchObject({ minuteRequests: 1, dayRequests: 1 });
      expect(first.event).toBeUndefined();
      const second = planTake(key({ limits, windows: first.windows! }), pool(), rankContext);
      expect(second.condition.readyAt).toBe(until);
      expect(second.event).toMatchObject({ from: "live", to: "cooling", class: null, until });
    },
  );

  it.each([
    ["a plain key", key(), pool(), false],
    ["a key with a lease cap", key({ maxConcurrency: 1 }), pool(), true],
    ["a key with rpm", key({ limits: { rpm: 5 } }), pool(), true],
    ["a key with daily_requests", key({ limits: { dailyRequests: 5 } }), pool(), true],
    ["a key with only tpm", key({ limits: { tpm: 5 } }), pool(), false],
    ["a pool that rests keys after each take", key(), pool({ cooldownSec: 1 }), true],
  ] as const)("arbitrates %s in the shared store: %p", (_, facts, rules, expected) => {
    expect(takeNeedsArbitration(facts, rules)).toBe(expected);
  });
});

describe("planRelease", () => {
  const cases: Array<{
    name: string;
    outcome: Outcome;
    state: string;
    penalised: boolean;
    failureClass?: string;
    rung: number;
  }> = [
    { name: "success", outcome: { ok: true }, state: "live", penalised: false, rung: 0 },
    {
      name: "rate_limit",
      outcome: { ok: false, status: 429 },
      state: "cooling",
      penalised: true,
      failureClass: "rate_limit",
      rung: 1,
    },
    {
      name: "quota",
      outcome: { ok: false, status: 402 },
      state: "cooling",
      penalised: true,
      failureClass: "quota",
      rung: 1,
    },
    {
      name: "auth",
      outcome: { ok: false, status: 401 },
      state: "quarantined",
      penalised: true,
      failureClass: "auth",
      rung: 1,
    },
    {
      name: "overloaded",
      outcome: { ok: false, status: 529 },
      state: "cooling",
      penalised: true,
      failureClass: "overloaded",
      rung: 1,
    },
    {
      name: "server error",
      outcome: { ok: false, status: 503 },
      state: "cooling",
      penalised: true,
      failureClass: "overloaded",
      rung: 1,
    },
    {
      name: "timeout",
      outcome: { ok: false, error: "timeout" },
      state: "cooling",
      penalised: true,
      failureClass: "timeout",
      rung: 1,
    },
    {
      name: "network",
      outcome: { ok: false, error: "network" },
      state: "cooling",
      penalised: true,
      failureClass: "network",
      rung: 1,
    },
    {
      name: "client",
      outcome: { ok: false, status: 400 },
      state: "live",
      penalised: false,
      failureClass: "client",
      rung: 0,
    },
    {
      name: "caller's own class",
      outcome: { ok: false, class: "quota" },
      state: "cooling",
      penalised: true,
      failureClass: "quota",
      rung: 1,
    },
  ];

  it.each(cases.map((c) => [c.name, c]))("applies %s", (_, c) => {
    const plan = planRelease(key({ inFlight: 1 }), c.outcome, pool(), ctx, 1);
    expect(plan.inFlight).toBe(0);
    expect(plan.penalised).toBe(c.penalised);
    expect(plan.failureClass).toBe(c.failureClass as never);
    expect(plan.ladder.rung).toBe(c.rung);
    expect(plan.event?.to ?? "live").toBe(c.state as never);
    expect(plan.changesCondition).toBe(c.state !== "live" || c.rung !== 0);
  });

  it("changes nothing another process decides on when a live key succeeds", () => {
    const plan = planRelease(key({ inFlight: 1 }), { ok: true }, pool(), ctx, 1);
    expect(plan).toMatchObject({ changesCondition: false, takeable: true, rank: NOW });
    expect(plan.event).toBeUndefined();
    expect(plan.groupRest).toBeUndefined();
  });

  it("passes a rate limit on to the key's group, and re-probes an auth failure on the revive schedule", () => {
    const limited = planRelease(key({ group: "acct" }), { ok: false, status: 429 }, pool(), ctx, 1);
    expect(limited.groupRest).toMatchObject({ group: "acct", cls: "rate_limit", until: limited.condition.readyAt });
    const member = planGroupRest(key({ id: "k2" }), limited.groupRest!, NOW);
    expect(member?.condition.readyAt).toBe(limited.condition.readyAt);
    expect(member?.event).toMatchObject({ from: "live", to: "cooling", class: "rate_limit" });
    expect(
      planGroupRest(key({ condition: { health: "dead", reason: "x", readyAt: 0 } }), limited.groupRest!, NOW),
    ).toBeNull();
    const auth = planRelease(key(), { ok: false, status: 401 }, pool(), ctx, 1);
    expect(auth.groupRest).toBeUndefined();
    expect(auth.reviveCheckAt).toBe(NOW + 54_000);
  });

  it("rests a key whose upstream budget is spent, and ranks most_remaining by what is left", () => {
    const spent = planRelease(
      key(),
      { ok: true, budget: { requests: 0, requestsResetAt: NOW + 30_000 } },
      pool(),
      ctx,
      1,
    );
    expect(spent.condition.readyAt).toBe(NOW + 30_000);
    const left = planRelease(
      key(),
      { ok: true, budget: { requests: 7 } },
      pool({ rotation: "most_remaining" }),
      ctx,
      1,
    );
    expect(left.rank).toBe(-7);
    const refills = planRelease(
      key(),
      { ok: true, budget: { requests: 0, requestsResetAt: NOW + 1 } },
      pool({ rotation: "most_remaining" }),
      ctx,
      1,
    );
    expect(refills.rank).toBe(-FULL_BUDGET);
  });

  it("counts tokens against tpm and prices usage", () => {
    const plan = planRelease(
      key({ limits: { tpm: 100 } }),
      { ok: true, usage: { input: 80, output: 30 }, model: "m" },
      pool({ prices: { m: { inputPerMtok: 1, outputPerMtok: 2 } } }),
      ctx,
      1,
    );
    expect(plan.windows?.minuteTokens).toBe(110);
    expect(plan.condition.readyAt).toBe(NOW + 60_000);
    expect(plan.costMicros).toBe(80 + 60);
  });

  it("puts a key back into rotation where a new key would go", () => {
    const out = key({ condition: { health: "quarantined", reason: "x", readyAt: NOW - 1 }, takeable: false });
    expect(planRelease(out, { ok: true }, pool(), ctx, 0).rank).toBe(-1);
  });
});

describe("planCheck and the other condition planners", () => {
  it.each([
    [
      "a success revives a dead key",
      key({ condition: { health: "dead", reason: "x", readyAt: 0 }, takeable: false }),
      { ok: true, reason: "ok" },
      "live",
    ],
    ["an auth failure quarantines", key(), { ok: false, status: 401, reason: "HTTP 401" }, "quarantined"],
    ["a rate limit rests", key(), { ok: false, status: 429, reason: "HTTP 429", retryAfterSec: 9 }, "cooling"],
    [
      "a third failure in a row is dead",
      key({ consecutiveFailures: 2 }),
      { ok: false, status: 500, reason: "HTTP 500" },
      "dead",
    ],
    ["a first failure only counts", key(), { ok: false, status: 500, reason: "HTTP 500" }, "live"],
  ] as const)("%s", (_, facts, result, state) => {
    const plan = planCheck(facts, result, pool(), ctx);
    expect(plan.event?.to ?? "live").toBe(state);
    expect(plan.nextCheckAt).toBeGreaterThan(NOW);
  });

  it("starts the ladder over when a probe revives a key, and ranks it as a new key", () => {
    const facts = key({
      condition: { health: "quarantined", reason: "x", readyAt: 0 },
      takeable: false,
      ladder: { failClass: "auth", rung: 2, failUntil: 0 },
    });
    const plan = planCheck(facts, { ok: true, reason: "ok" }, pool(), ctx);
    expect(plan.ladder).toEqual(CLEAN_LADDER);
    expect(plan.rank).toBe(-1);
  });

  it("puts a refreshed key on probation and quarantines one whose refresh failed", () => {
    expect(planRefreshed(key(), ctx).condition).toMatchObject({ health: "unknown", reason: "token refreshed" });
    const failed = planRefreshFailed(key(), "refresh refused", pool(), ctx);
    expect(failed).toMatchObject({ condition: { health: "quarantined", readyAt: 0 }, takeable: false });
  });

  it("switches a key off and on, and says nothing when it already is", () => {
    expect(planEnabled(key(), false, ctx)?.event).toMatchObject({ from: "live", to: "disabled" });
    expect(planEnabled(key(), true, ctx)).toBeNull();
  });
});

describe("chooseKey", () => {
  const keys = [
    { id: "a", rank: 3, takeable: true, readyAt: 0, inFlight: 0, maxConcurrency: null },
    { id: "b", rank: 1, takeable: true, readyAt: NOW + 1, inFlight: 0, maxConcurrency: null },
    { id: "c", rank: 2, takeable: true, readyAt: 0, inFlight: 1, maxConcurrency: 1 },
    { id: "d", rank: 3, takeable: true, readyAt: 0, inFlight: 0, maxConcurrency: 2 },
    { id: "e", rank: 0, takeable: false, readyAt: 0, inFlight: 0, maxConcurrency: null },
    { id: "f", rank: 9, takeable: true, readyAt: 0, inFlight: 0, maxConcurrency: null },
  ];
  it.each([
    ["the lowest ready rank, ties by id", { start: LOWEST_RANK, exclude: [] }, "a"],
    ["around an exclusion", { start: LOWEST_RANK, exclude: ["a"] }, "d"],
    ["from a random start", { start: 4, exclude: [] }, "f"],
    ["wrapping when nothing lies after the start", { start: 10, exclude: [] }, "a"],
    ["a session's own key first", { start: LOWEST_RANK, exclude: [], preferred: ["b", "f"] }, "f"],
    ["nothing when nothing is ready", { start: LOWEST_RANK, exclude: ["a", "d", "f"] }, undefined],
  ] as const)("picks %s", (_, choice, expected) => {
    expect(chooseKey(keys, { now: NOW, ...choice })?.id).toBe(expected);
  });
});
