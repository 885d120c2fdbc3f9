import { describe, expect, it } from "bun:test";
import type { DecisionContext, KeyFacts } from "../../src/pool/key-facts";
import { CLEAN_LADDER, type Outcome } from "../../src/pool/key-state";
import { EMPTY_WINDOWS, MINUTE_MS } from "../../src/pool/limits";
import { DEFAULT_MODEL_ACCESS_REST_SEC, compileAccessRules } from "../../src/pool/model-access";
import {
  FRESH_MODEL_STATE,
  LADDER_MEMORY_MS,
  type ModelFacts,
  type ModelState,
  type PairState,
  chooseKeyForModel,
  isSpentPair,
  isUsableForModel,
  modelReadyAt,
  modelReadyAtOfPool,
  modelStatusOf,
  pairStateOf,
} from "../../src/pool/model-facts";
import {
  type ModelRules,
  planModelCheck,
  planModelGroupRest,
  planModelRelease,
  planModelTake,
} from "../../src/pool/plan-model";
import { planRelease } from "../../src/pool/plan-release";
import { LOWEST_RANK } from "../../src/pool/rotation";
import { liveKey } from "./_key-facts";

const NOW = 1_000_000_000;
const MIN = 60_000;
const ctx: DecisionContext = { now: NOW, random: () => 0, initialRank: () => -1 };
const OPENAI_404 = '{"error":{"message":"The model `m-big` does not exist or you do not have access to it."}}';

function key(overrides: Partial<KeyFacts & ModelFacts> = {}): KeyFacts & ModelFacts {
  return { ...liveKey({ inFlight: 1 }), allowedModels: null, models: new Map(), ...overrides };
}

function pool(overrides: Partial<ModelRules> = {}): ModelRules {
  return { name: "p", rotation: "lru", cooldownSec: 0, recheckIntervalSec: 300, ...overrides };
}

function pair(overrides: Partial<ModelState> = {}): ModelState {
  return { ...FRESH_MODEL_STATE, ...overrides };
}

const release = (k: KeyFacts & ModelFacts, model: string | undefined, outcome: Outcome, p = pool()) =>
  planModelRelease(k, model, outcome, p, ctx, 1);

describe("planModelRelease", () => {
  it("is planRelease when the request named no model", () => {
    for (const outcome of [{ ok: true }, { ok: false, status: 429 }, { ok: false, status: 404, body: OPENAI_404 }]) {
      expect(release(key(), undefined, outcome)).toEqual(planRelease(key(), outcome, pool(), ctx, 1));
    }
  });

  // The scope table, end to end: which failures rest the pair and which the key.
  const scoped: [string, Outcome, "pair" | "key", Partial<ModelRules>][] = [
    ["a 429", { ok: false, status: 429 }, "pair", {}],
    ["a 529 overloaded", { ok: false, status: 529 }, "pair", {}],
    ["a timeout", { ok: false, error: "timeout" }, "pair", {}],
    [
      "a per-model daily quota",
      { ok: false, status: 429, body: "quotaId: RequestsPerDayPerProjectPerModel" },
      "pair",
      {},
    ],
    ["an account quota (billing)", { ok: false, status: 429, body: "insufficient_quota" }, "key", {}],
    ["a 402", { ok: false, status: 402 }, "key", {}],
    ["an auth failure", { ok: false, status: 401 }, "key", {}],
    ["a refused connection", { ok: false, error: "connection refused" }, "key", {}],
    [
      "a 429 with rate_limit scoped to the key",
      { ok: false, status: 429 },
      "key",
      {
        failurePolicy: { rate_limit: { scope: "key" } },
      },
    ],
    [
      "a 402 with quota scoped to the model",
      { ok: false, status: 402 },
      "pair",
      {
        failurePolicy: { quota: { scope: "model" } },
      },
    ],
  ];
  it.each(scoped)("%s rests the %s", (_, outcome, where, rules) => {
    const plan = release(key(), "m-big", outcome, pool(rules));
    expect(plan.penalised).toBe(true);
    if (where === "pair") {
      expect(plan.condition).toEqual({ health: "live", reason: null, readyAt: 0 });
      expect(plan.changesCondition).toBe(false);
      expect(plan.pair?.state.readyAt).toBeGreaterThan(NOW);
      expect(plan.pair?.changesCondition).toBe(true);
      expect(plan.pair?.event).toMatchObject({ model: "m-big", from: "ready", to: "cooling" });
    } else {
      expect(plan.condition).not.toEqual({ health: "live", reason: null, readyAt: 0 });
      expect(plan.pair?.state).toEqual(FRESH_MODEL_STATE);
      expect(plan.pair?.changesCondition).toBe(false);
    }
  });

  it("climbs the pair's ladder (1m → 5m → 25m → 1h) and leaves the key's alone", () => {
    let k = key();
    const rests: number[] = [];
    for (let i = 0; i < 4; i++) {
      // Each failure comes after the previous rest has ended: a new episode, one rung up.
      const at = NOW + i * 2 * 3600_000;
      const plan = planModelRelease(k, "m-big", { ok: false, status: 429 }, pool(), { ...ctx, now: at }, 1);
      rests.push(plan.pair!.state.readyAt - at);
      expect(plan.ladder).toEqual(CLEAN_LADDER);
      k = key({ models: new Map([["m-big", plan.pair!.state]]) });
    }
    expect(rests).toEqual([1 * MIN, 5 * MIN, 25 * MIN, 60 * MIN]);
    expect(k.models.get("m-big")!.ladder).toMatchObject({ failClass: "rate_limit", rung: 4 });
  });

  it("keeps one model's ladder apart from another's", () => {
    const big = pair({ ladder: { failClass: "rate_limit", rung: 3, failUntil: NOW - 1 } });
    const plan = release(key({ models: new Map([["m-big", big]]) }), "m-small", { ok: false, status: 429 });
    expect(plan.pair).toMatchObject({ model: "m-small", state: { readyAt: NOW + MIN, ladder: { rung: 1 } } });
  });

  it("counts requests already in flight when the pair's rung began as one rung", () => {
    const resting = pair({ readyAt: NOW + MIN, ladder: { failClass: "rate_limit", rung: 1, failUntil: NOW + MIN } });
    const plan = release(key({ models: new Map([["m-big", resting]]) }), "m-big", { ok: false, status: 429 });
    expect(plan.pair?.state.ladder.rung).toBe(1);
    expect(plan.pair?.changesCondition).toBe(false);
  });

  it("rests the key's group on the same pair for a pair-scoped rate limit", () => {
    const plan = release(key({ group: "acme" }), "m-big", { ok: false, status: 429 });
    expect(plan.groupRest).toMatchObject({ group: "acme", model: "m-big", cls: "rate_limit", until: NOW + MIN });
    const member = planModelGroupRest(undefined, plan.groupRest!, NOW);
    expect(member).toMatchObject({
      model: "m-big",
      state: { readyAt: NOW + MIN, access: "ok" },
      event: { from: "ready", to: "cooling", class: "rate_limit", until: NOW + MIN },
    });
    expect(planModelGroupRest(pair({ readyAt: NOW + 2 * MIN }), plan.groupRest!, NOW)).toBeNull();
    // A key's own group rest (no model) is planGroupRest's, not the pairs'.
    expect(planModelGroupRest(undefined, { ...plan.groupRest!, model: undefined }, NOW)).toBeNull();
  });

  describe("an answer that denies the model", () => {
    it("marks the pair denied for the access rest, and leaves the key untouched and unpenalised", () => {
      const plan = release(key(), "m-big", { ok: false, status: 404, body: OPENAI_404 });
      expect(plan).toMatchObject({
        modelDenied: true,
        penalised: false,
        failureClass: undefined,
        condition: { health: "live", reason: null, readyAt: 0 },
        changesCondition: false,
        pair: {
          model: "m-big",
          changesCondition: true,
          state: { access: "denied", readyAt: NOW + DEFAULT_MODEL_ACCESS_REST_SEC * 1000 },
          event: { from: "ready", to: "denied", until: NOW + DEFAULT_MODEL_ACCESS_REST_SEC * 1000 },
        },
      });
      expect(plan.pair?.state.reason).toBe("no access to this model (HTTP 404); tried again in 6h");
    });

    it("uses the pool's rest and the pool's own rules", () => {
      const rules = pool({ modelAccessRestSec: 600, modelAccess: compileAccessRules({ rules: [{ body: "tier" }] }) });
      const plan = release(key(), "m-big", { ok: false, status: 400, body: "model tier" }, rules);
      expect(plan.pair?.state).toMatchObject({ access: "denied", readyAt: NOW + 600_000 });
    });

    it("is left to the caller's own class when it gave one", () => {
      const plan = release(key(), "m-big", { ok: false, status: 404, body: OPENAI_404, class: "rate_limit" });
      expect(plan.modelDenied).toBeUndefined();
      expect(plan.pair?.state.access).toBe("ok");
    });

    it("ends when the pair, tried again after its rest, is rate limited instead: the key has the model", () => {
      const lapsed = pair({ access: "denied", readyAt: NOW - 1, reason: "no access" });
      const plan = release(key({ models: new Map([["m-big", lapsed]]) }), "m-big", { ok: false, status: 429 });
      expect(plan.pair?.state).toMatchObject({ access: "ok", readyAt: NOW + MIN });
      expect(plan.pair?.event).toMatchObject({ from: "ready", to: "cooling", class: "rate_limit" });
    });

    it("turns an auth failure scoped to the model into a denial of the model", () => {
      const rules = pool({ failurePolicy: { auth: { scope: "model" } } });
      const plan = release(key(), "m-big", { ok: false, status: 401 }, rules);
      expect(plan.condition.health).toBe("live");
      expect(plan.failureClass).toBe("auth");
      expect(plan.pair?.state).toMatchObject({ access: "denied" });
    });
  });

  describe("a success", () => {
    it("starts the pair's ladder over and gives a denied pair its access back", () => {
      const denied = pair({
        access: "denied",
        readyAt: NOW - 1,
        reason: "no access",
        ladder: {
          failClass: "rate_limit",
          rung: 2,
          failUntil: NOW - 1,
        },
      });
      const plan = release(key({ models: new Map([["m-big", denied]]) }), "m-big", { ok: true });
      expect(plan.pair?.state).toEqual(FRESH_MODEL_STATE);
      expect(plan.pair?.changesCondition).toBe(true);
    });

    it("never shortens the pair's rest (a request that was in flight before the 429)", () => {
      const resting = pair({ readyAt: NOW + MIN, reason: "rate_limit" });
      const plan = release(key({ models: new Map([["m-big", resting]]) }), "m-big", { ok: true });
      expect(plan.pair?.state).toMatchObject({ readyAt: NOW + MIN, reason: "rate_limit" });
    });

    it("applies spent rate-limit headers to the pair, not the key", () => {
      const outcome: Outcome = { ok: true, budget: { requests: 0, requestsResetAt: NOW + 30_000 } };
      const plan = release(key(), "m-big", outcome);
      expect(plan.condition).toEqual({ health: "live", reason: null, readyAt: 0 });
      expect(plan.budget).toBeUndefined();
      expect(plan.pair?.state.readyAt).toBe(NOW + 30_000);
      // Without a model, the same headers rest the key as before.
      expect(release(key(), undefined, outcome).condition.readyAt).toBe(NOW + 30_000);
    });

    it("counts tokens against the model's tpm on this key", () => {
      const rules = pool({ modelLimits: { "m-big": { tpm: 1000 } } });
      const plan = release(key(), "m-big", { ok: true, tokens: 1000 }, rules);
      expect(plan.pair?.state).toMatchObject({ readyAt: NOW + MINUTE_MS, windows: { minuteTokens: 1000 } });
      expect(plan.pair?.state.reason).toContain("m-big tpm limit (1000)");
      expect(release(key(), "m-small", { ok: true, tokens: 1000 }, rules).pair?.state.readyAt).toBe(0);
    });
  });
});

describe("isUsableForModel", () => {
  const restricted = new Set(["m-small"]);
  const cases: [string, ModelFacts, string, boolean, PairState][] = [
    ["a key with no pair", { allowedModels: null, models: new Map() }, "m-big", true, "ready"],
    [
      "a resting pair",
      { allowedModels: null, models: new Map([["m-big", pair({ readyAt: NOW + 1 })]]) },
      "m-big",
      false,
      "cooling",
    ],
    [
      "another model's rest",
      { allowedModels: null, models: new Map([["m-big", pair({ readyAt: NOW + 1 })]]) },
      "m-small",
      true,
      "ready",
    ],
    [
      "a denied pair",
      { allowedModels: null, models: new Map([["m-big", pair({ access: "denied", readyAt: NOW + 1 })]]) },
      "m-big",
      false,
      "denied",
    ],
    [
      "a denial whose rest is over",
      { allowedModels: null, models: new Map([["m-big", pair({ access: "denied", readyAt: NOW })]]) },
      "m-big",
      true,
      "ready",
    ],
    [
      "a model the tokens file does not list",
      { allowedModels: restricted, models: new Map() },
      "m-big",
      false,
      "restricted",
    ],
    ["a model the tokens file lists", { allowedModels: restricted, models: new Map() }, "m-small", true, "ready"],
  ];
  it.each(cases)("%s", (_, facts, model, usable, state) => {
    expect(isUsableForModel(facts, model, NOW)).toBe(usable);
    expect(pairStateOf(facts, model, NOW)).toBe(state);
  });

  it("says a restricted key is never ready for the model", () => {
    expect(modelReadyAt({ allowedModels: restricted, models: new Map() }, "m-big")).toBe(Number.POSITIVE_INFINITY);
  });
});

describe("planModelTake", () => {
  it("counts nothing when the pool has no limit for the model", () => {
    expect(planModelTake(undefined, "m-big", undefined, NOW)).toBeNull();
    expect(planModelTake(undefined, "m-big", { tpm: 5 }, NOW)).toBeNull();
  });

  it("rests the pair when the take uses the model's rpm up", () => {
    const first = planModelTake(undefined, "m-big", { rpm: 2 }, NOW)!;
    expect(first).toMatchObject({ changesCondition: false, state: { readyAt: 0, windows: { minuteRequests: 1 } } });
    const second = planModelTake(first.state, "m-big", { rpm: 2 }, NOW + 1)!;
    expect(second).toMatchObject({
      changesCondition: true,
      state: { readyAt: NOW + MINUTE_MS },
      event: { model: "m-big", from: "ready", to: "cooling", until: NOW + MINUTE_MS },
    });
    expect(second.state.reason).toContain("m-big rpm limit (2)");
  });
});

describe("planModelCheck", () => {
  const denied = pair({ access: "denied", readyAt: NOW + 3600_000, reason: "no access" });
  it("gives a denied pair its access back when a probe naming the model succeeds", () => {
    expect(planModelCheck(denied, "m-big", { ok: true }, pool(), NOW)).toMatchObject({
      state: { access: "ok", readyAt: 0 },
      event: { from: "denied", to: "ready" },
    });
    expect(planModelCheck(undefined, "m-big", { ok: true }, pool(), NOW)).toBeNull();
  });
  it("denies the pair when the probe is refused the model, and ignores other failures", () => {
    const found = planModelCheck(undefined, "m-big", { ok: false, status: 404, body: OPENAI_404 }, pool(), NOW);
    expect(found?.state).toMatchObject({ access: "denied", readyAt: NOW + DEFAULT_MODEL_ACCESS_REST_SEC * 1000 });
    expect(planModelCheck(undefined, "m-big", { ok: false, status: 500 }, pool(), NOW)).toBeNull();
  });
});

describe("chooseKeyForModel", () => {
  const candidate = (id: string, rank: number, facts: Partial<ModelFacts> = {}) => ({
    id,
    rank,
    takeable: true,
    readyAt: 0,
    inFlight: 0,
    maxConcurrency: null,
    allowedModels: null,
    models: new Map<string, ModelState>(),
    ...facts,
  });
  const keys = [
    candidate("a", 1, { models: new Map([["m-big", pair({ readyAt: NOW + MIN })]]) }),
    candidate("b", 2, { models: new Map([["m-big", pair({ access: "denied", readyAt: NOW + MIN })]]) }),
    candidate("c", 3, { allowedModels: new Set(["m-small"]) }),
    candidate("d", 4),
  ];
  const choice = { now: NOW, start: LOWEST_RANK, exclude: [] };

  it("skips keys resting, denied or restricted for the model, and only for that model", () => {
    expect(chooseKeyForModel(keys, choice, "m-big")?.id).toBe("d");
    expect(chooseKeyForModel(keys, choice, "m-small")?.id).toBe("a");
    expect(chooseKeyForModel(keys, { ...choice, exclude: ["a", "b", "c"] }, "m-small")?.id).toBe("d");
  });

  it("answers when a take for the model could next succeed", () => {
    expect(modelReadyAtOfPool(keys, "m-big")).toBe(0);
    expect(modelReadyAtOfPool(keys.slice(0, 3), "m-big")).toBe(NOW + MIN);
    expect(modelReadyAtOfPool(keys.slice(2, 3), "m-big")).toBe(Number.POSITIVE_INFINITY);
  });
});

describe("spent pairs", () => {
  const climbed = (failUntil: number) => pair({ ladder: { failClass: "rate_limit", rung: 3, failUntil } });
  const cases: [string, ModelState, boolean][] = [
    ["a fresh pair", FRESH_MODEL_STATE, true],
    ["a resting pair", pair({ readyAt: NOW + 1 }), false],
    ["a denial not yet over", pair({ access: "denied", readyAt: NOW + 1 }), false],
    ["a denial that is over", pair({ access: "denied", readyAt: NOW }), true],
    ["a ladder whose last rest ended an hour ago", climbed(NOW - 3600_000), false],
    ["a ladder quiet for a day", climbed(NOW - LADDER_MEMORY_MS), true],
    ["an open minute window", pair({ windows: { ...EMPTY_WINDOWS, minuteStart: NOW - 1, minuteRequests: 1 } }), false],
    [
      "an open day window (pairs have no daily limit)",
      pair({ windows: { ...EMPTY_WINDOWS, dayStart: NOW - MINUTE_MS * 2, dayRequests: 3 } }),
      true,
    ],
  ];
  it.each(cases)("%s → %p", (_, state, spent) => {
    expect(isSpentPair(state, NOW)).toBe(spent);
  });

  it("decides as a missing pair would, so that a store dropping it changes nothing", () => {
    const at = (failUntil: number) =>
      release(key({ models: new Map([["m-big", climbed(failUntil)]]) }), "m-big", { ok: false, status: 429 });
    expect(at(NOW - LADDER_MEMORY_MS).pair?.state.ladder.rung).toBe(1);
    expect(at(NOW - 3600_000).pair?.state.ladder.rung).toBe(4);
  });
});

describe("modelStatusOf", () => {
  it("shows the pairs that are out, with until and why, and the models a key is restricted to", () => {
    const facts: ModelFacts = {
      allowedModels: new Set(["m-big", "m-small"]),
      models: new Map([
        ["m-big", pair({ readyAt: NOW + MIN, reason: "rate_limit (HTTP 429); rung 1, resting 1m" })],
        ["m-small", pair({ access: "denied", readyAt: NOW + 2 * MIN, reason: "no access" })],
        ["m-old", pair({ readyAt: NOW - 1, reason: "over" })],
      ]),
    };
    expect(modelStatusOf(facts, NOW)).toEqual({
      models: {
        "m-big": { state: "cooling", until: NOW + MIN, reason: "rate_limit (HTTP 429); rung 1, resting 1m" },
        "m-small": { state: "denied", until: NOW + 2 * MIN, reason: "no access" },
      },
      onlyModels: ["m-big", "m-small"],
    });
    expect(modelStatusOf({ allowedModels: null, models: new Map() }, NOW)).toEqual({ models: {} });
  });
});
