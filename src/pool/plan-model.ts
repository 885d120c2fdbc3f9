/**
 * The per-(key, model) planners: what a take and a release do to the pair of the model the request
 * named, beside what they do to the key. A failure rests the pair or the key by its scope (see
 * failure-scope.ts); an answer that denies the model marks the pair, never the key; the upstream's
 * rate-limit headers and the pool's model_limits rest the pair they describe. Without a model,
 * planModelRelease is planRelease: keypool behaves as it does for keys alone.
 * Pure; the stores load the key and its pairs, call these and write both plans.
 */
import { MAX_COOLDOWN_MS, clampCooldownMs } from "./bounds";
import { CLEAN_LADDER, type LadderPosition, type Outcome, afterOutcome } from "./key-state";
import { classifyFailure } from "./classify";
import { scopeOf } from "./failure-scope";
import type { DecisionContext, KeyFacts, PoolRules } from "./key-facts";
import { countRequest, countTokens } from "./limits";
import { DEFAULT_MODEL_ACCESS_REST_SEC, type ModelAccessRule, deniesModelAccess } from "./model-access";
import {
  FRESH_MODEL_STATE,
  type ModelFacts,
  type ModelState,
  type PairEvent,
  denialReason,
  onePair,
  pairOf,
  pairStateOf,
} from "./model-facts";
import { type GroupRest, type ReleasePlan, planRelease } from "./plan-release";
import { exhaustedUntil } from "./rate-limit-headers";
import type { FailureClass, FailurePolicyConfig, ModelLimit, ModelLimitsConfig } from "./vocabulary";

/** The pool's rules that per-model decisions read besides PoolRules. */
export interface ModelRules extends PoolRules {
  failurePolicy?: FailurePolicyConfig;
  modelAccess?: readonly ModelAccessRule[];
  /** How long a pair found without access stays out; DEFAULT_MODEL_ACCESS_REST_SEC when unset. */
  modelAccessRestSec?: number;
  modelLimits?: ModelLimitsConfig;
}

export interface PairPlan {
  model: string;
  state: ModelState;
  /** Whether the pair's rest, access or ladder changed: other processes' next take must see it at once. */
  changesCondition: boolean;
  event?: PairEvent;
}

export interface ModelReleasePlan extends ReleasePlan {
  /** What happens to the pair of the model the request named; absent without a model. */
  pair?: PairPlan;
  /** The answer said the key cannot use the model: the request is retried on another key, as a 429 is. */
  modelDenied?: boolean;
}

export function planModelRelease(
  key: KeyFacts & ModelFacts,
  model: string | undefined,
  outcome: Outcome,
  pool: ModelRules,
  ctx: DecisionContext,
  leasesGiven: number,
): ModelReleasePlan {
  if (model === undefined) return planRelease(key, outcome, pool, ctx, leasesGiven);
  const before = pairOf(key, model, ctx.now);
  if (outcome.ok) {
    // The key's plan is this call's own object: the pair is added to it rather than to a copy.
    const plan = keyPlan(key, outcome, pool, ctx, leasesGiven);
    plan.pair = pairPlan(model, before, afterPairSuccess(before, outcome, pool, ctx.now, model), ctx.now);
    return plan;
  }
  // Not the key's fault for its other models: the key is left exactly as a client error leaves it.
  if (outcome.class === undefined && !outcome.verdict && deniesModelAccess(outcome, pool.modelAccess)) {
    const pair = deniedPair(model, before, pool, ctx, null, describe(outcome));
    return {
      ...keyPlan(key, { ...outcome, class: "client" }, pool, ctx, leasesGiven),
      penalised: false,
      failureClass: undefined,
      modelDenied: true,
      pair,
    };
  }
  const cls = outcome.class ?? classifyFailure(outcome, pool.classify);
  if (cls === undefined || cls === "client" || outcome.verdict || scopeOf(cls, outcome, pool.failurePolicy) === "key") {
    const after = withBudget(withTokens(before, outcome, pool, ctx.now, model), outcome, ctx.now);
    const plan = keyPlan(key, outcome, pool, ctx, leasesGiven);
    plan.pair = pairPlan(model, before, after, ctx.now);
    return plan;
  }
  // Pair-scoped: the key is left as a client error leaves it (but the failure is still counted as its).
  const pair = pairAfterFailure(model, before, outcome, cls, pool, ctx);
  const plan: ModelReleasePlan = {
    ...keyPlan(key, { ...outcome, class: "client" }, pool, ctx, leasesGiven),
    penalised: true,
    failureClass: cls,
    pair,
  };
  if ((cls === "rate_limit" || cls === "quota") && key.group !== null) {
    plan.groupRest = {
      group: key.group,
      until: pair.state.readyAt,
      cls,
      reason: `${cls} on key ${key.id} of group ${key.group} for ${model}; resting with it`,
      model,
    };
  }
  return plan;
}

/** What the release does to the key itself when it named a model. */
function keyPlan(
  key: KeyFacts,
  outcome: Outcome,
  pool: ModelRules,
  ctx: DecisionContext,
  leasesGiven: number,
): ModelReleasePlan {
  // The upstream's budget headers describe the model that was called: they rest the pair, not the key.
  const forKey = outcome.budget === undefined ? outcome : { ...outcome, budget: undefined };
  return planRelease(key, forKey, pool, ctx, leasesGiven);
}

/** The pair climbs its own ladder, as a key climbs its ladder for a failure of the same class. */
function pairAfterFailure(
  model: string,
  before: ModelState,
  outcome: Outcome,
  cls: FailureClass,
  pool: ModelRules,
  ctx: DecisionContext,
): PairPlan {
  // An auth failure scoped to the model (failure_policy.auth.scope: model) is a denial of that model.
  if (cls === "auth") return deniedPair(model, before, pool, ctx, cls, `auth failure, ${describe(outcome)}`);
  const effect = afterOutcome(
    { health: "live", reason: before.reason, readyAt: before.readyAt, ...before.ladder },
    { ...outcome, class: cls },
    pool,
    ctx.now,
    ctx.random,
  );
  const ladder: LadderPosition = { failClass: effect.failClass, rung: effect.rung, failUntil: effect.failUntil };
  // An answer other than a denial means the upstream serves the model to this key: any denial is over.
  const rested: ModelState = { ...before, access: "ok", readyAt: effect.readyAt, reason: effect.reason, ladder };
  return pairPlan(
    model,
    before,
    withBudget(withTokens(rested, outcome, pool, ctx.now, model), outcome, ctx.now),
    ctx.now,
    cls,
  );
}

function deniedPair(
  model: string,
  before: ModelState,
  pool: ModelRules,
  ctx: DecisionContext,
  cls: FailureClass | null,
  what: string,
): PairPlan {
  return pairPlan(model, before, denied(before, pool, ctx.now, what), ctx.now, cls);
}

/** The pair out for model_access.rest_sec (never less than a rest it already has). */
function denied(before: ModelState, pool: ModelRules, now: number, what: string): ModelState {
  const restMs = clampCooldownMs((pool.modelAccessRestSec ?? DEFAULT_MODEL_ACCESS_REST_SEC) * 1000);
  const readyAt = Math.max(before.readyAt, now + restMs);
  return { ...before, readyAt, reason: denialReason(what, readyAt - now), access: "denied" };
}

/** A success on the model: the pair's ladder starts over and access is known; a rest already set stays. */
function afterPairSuccess(
  before: ModelState,
  outcome: Outcome,
  pool: ModelRules,
  now: number,
  model: string,
): ModelState {
  const resting = before.access === "ok" && before.readyAt > now;
  // A fresh pair stays the fresh pair (the same object), unless a limit or the headers say otherwise.
  const cleared: ModelState =
    before === FRESH_MODEL_STATE
      ? before
      : {
          ...before,
          access: "ok",
          ladder: CLEAN_LADDER,
          readyAt: resting ? before.readyAt : 0,
          reason: resting ? before.reason : null,
        };
  return withBudget(withTokens(cleared, outcome, pool, now, model), outcome, now);
}

/** Tokens the request used, counted against the model's tpm on this key. */
function withTokens(pair: ModelState, outcome: Outcome, pool: ModelRules, now: number, model: string): ModelState {
  const limit = pool.modelLimits?.[model];
  const tokens = outcome.tokens ?? (outcome.usage && outcome.usage.input + outcome.usage.output);
  if (limit?.tpm === undefined || tokens === undefined || tokens <= 0) return pair;
  const counted = countTokens(pair.windows, tokens, { tpm: limit.tpm }, now);
  const next = { ...pair, windows: counted.windows };
  return counted.rest ? restPair(next, counted.rest.until, `${model} ${counted.rest.reason}`, now) : next;
}

/** The upstream's rate-limit headers: a spent budget rests the pair until it resets. */
function withBudget(pair: ModelState, outcome: Outcome, now: number): ModelState {
  const until = outcome.budget && exhaustedUntil(outcome.budget, now);
  if (until === undefined) return pair;
  return restPair(pair, until, "upstream rate-limit budget for this model spent; resting until it resets", now);
}

/** Never shortens a rest, and leaves a denied pair denied. */
function restPair(pair: ModelState, until: number, reason: string, now: number): ModelState {
  const bounded = Math.min(until, now + MAX_COOLDOWN_MS);
  if (pair.access === "denied" || bounded <= now || bounded <= pair.readyAt) return pair;
  return { ...pair, readyAt: bounded, reason };
}

function pairPlan(
  model: string,
  before: ModelState,
  after: ModelState,
  now: number,
  cls: FailureClass | null = null,
): PairPlan {
  // The common case, a success on a pair with nothing against it: nothing to compare or log.
  if (before === FRESH_MODEL_STATE && after === FRESH_MODEL_STATE && cls === null)
    return { model, state: after, changesCondition: false };
  const changesCondition =
    before.readyAt !== after.readyAt ||
    before.access !== after.access ||
    before.ladder.failClass !== after.ladder.failClass ||
    before.ladder.rung !== after.ladder.rung ||
    before.ladder.failUntil !== after.ladder.failUntil;
  const plan: PairPlan = { model, state: after, changesCondition };
  const from = pairStateOf(onePair(model, before), model, now);
  const to = pairStateOf(onePair(model, after), model, now);
  if (cls !== null || from !== to || (to !== "ready" && before.readyAt !== after.readyAt)) {
    plan.event = { model, from, to, class: cls, reason: after.reason, until: to === "ready" ? null : after.readyAt };
  }
  return plan;
}

function describe(outcome: Outcome): string {
  return outcome.status !== undefined ? `HTTP ${outcome.status}` : (outcome.error ?? "reported failure");
}

/**
 * What a take for `model` does to the pair: the request is counted against the model's rpm on this
 * key, and the pair rests when that uses the limit up. Null when the pool has no limit for the model
 * (nothing to count, nothing for the store to write).
 */
export function planModelTake(
  pair: ModelState | undefined,
  model: string,
  limit: ModelLimit | undefined,
  now: number,
): PairPlan | null {
  if (limit?.rpm === undefined) return null;
  const before = pair ?? FRESH_MODEL_STATE;
  const counted = countRequest(before.windows, { rpm: limit.rpm }, now);
  const next = { ...before, windows: counted.windows };
  const state = counted.rest ? restPair(next, counted.rest.until, `${model} ${counted.rest.reason}`, now) : next;
  return pairPlan(model, before, state, now);
}

/** A group member's share of a pair's rate limit or spent quota: its own pair of that model rests as long. */
export function planModelGroupRest(member: ModelState | undefined, rest: GroupRest, now: number): PairPlan | null {
  if (rest.model === undefined) return null;
  const before = member ?? FRESH_MODEL_STATE;
  const rested = restPair(before, rest.until, rest.reason, now);
  return rested === before ? null : pairPlan(rest.model, before, rested, now, rest.cls);
}

/**
 * A health check that named the model: a success gives a denied pair its access back at once (the
 * issue's "or when the health check names the model"); a denial found by the probe starts a new rest.
 * Null when the check changes nothing about the pair.
 */
export function planModelCheck(
  pair: ModelState | undefined,
  model: string,
  check: { ok: boolean; status?: number; body?: string },
  pool: ModelRules,
  now: number,
): PairPlan | null {
  const before = pair ?? FRESH_MODEL_STATE;
  if (check.ok) {
    if (before.access === "ok") return null;
    const revived: ModelState = {
      ...before,
      access: "ok",
      readyAt: 0,
      reason: `${model} available again (health check)`,
    };
    return pairPlan(model, before, revived, now);
  }
  if (!deniesModelAccess(check, pool.modelAccess)) return null;
  const what = check.status === undefined ? "health check" : `health check, HTTP ${check.status}`;
  return pairPlan(model, before, denied(before, pool, now, what), now);
}
