/**
 * What a probe's result, a token refresh and an operator's switch do to a key. Pure; the stores load
 * the key, call these and write the plan.
 */
import type { FailureClass } from "./vocabulary";
import { classifyFailure } from "./classify";
import type { DecisionContext, KeyFacts, PlannedEvent, PoolRules } from "./key-facts";
import {
  CLEAN_LADDER,
  type CheckOutcome,
  DEFAULT_FAILURES_TO_DEAD,
  type KeyCondition,
  type LadderPosition,
  afterCheck,
  awaitsRevival,
  isTakeable,
  nextCheckAt,
  setDisabled,
  stateOf,
  untilOf,
} from "./key-state";

/** A key's new condition, and where it stands in the rotation because of it. */
export interface ConditionPlan {
  condition: KeyCondition;
  takeable: boolean;
  rank: number;
  event?: PlannedEvent;
}

export interface CheckPlan extends ConditionPlan {
  consecutiveFailures: number;
  nextCheckAt: number;
  /** Set when a probe revived the key: its ladder starts over. */
  ladder?: LadderPosition;
}

export function planCheck(
  key: KeyFacts,
  result: CheckOutcome,
  pool: PoolRules,
  ctx: DecisionContext,
  storeFailuresToDead = DEFAULT_FAILURES_TO_DEAD,
): CheckPlan {
  const failuresToDead = pool.failuresToDead ?? storeFailuresToDead;
  const verdict = afterCheck(key.condition, result, key.consecutiveFailures, { ...pool, failuresToDead }, ctx.now);
  const failure = result.ok
    ? null
    : (classifyFailure({ status: result.status, error: result.status === undefined ? result.reason : undefined }) ??
      null);
  const plan: CheckPlan = {
    ...planCondition(key, verdict.condition, ctx, failure),
    consecutiveFailures: verdict.consecutiveFailures,
    nextCheckAt: nextCheckAt(verdict.condition.health, key.expiresAt, pool, ctx.now, ctx.random),
  };
  // A probe that revives a key is a success like any other: its ladder starts over.
  if (result.ok && awaitsRevival(key.condition.health)) plan.ladder = CLEAN_LADDER;
  return plan;
}

/** A refreshed token: the key is on probation until a probe or a request says otherwise. */
export function planRefreshed(key: KeyFacts, ctx: DecisionContext): ConditionPlan {
  return planCondition(key, { health: "unknown", reason: "token refreshed", readyAt: key.condition.readyAt }, ctx);
}

/** A refresh that failed: out until a probe succeeds, never a timed quarantine that would lapse back into rotation. */
export function planRefreshFailed(
  key: KeyFacts,
  reason: string,
  pool: PoolRules,
  ctx: DecisionContext,
): ConditionPlan & { nextCheckAt: number } {
  const condition: KeyCondition = { health: "quarantined", reason, readyAt: 0 };
  return {
    ...planCondition(key, condition, ctx),
    nextCheckAt: nextCheckAt(condition.health, key.expiresAt, pool, ctx.now, ctx.random),
  };
}

/** An operator switching a key off or on; null when it is already so. */
export function planEnabled(key: KeyFacts, enabled: boolean, ctx: DecisionContext): ConditionPlan | null {
  const next = setDisabled(key.condition, !enabled);
  return next.health === key.condition.health ? null : planCondition(key, next, ctx);
}

/**
 * A new condition decided from outside a release. A key coming back into rotation re-enters the
 * order as a new key would; a change of state is logged (`always`: even without one).
 */
export function planCondition(
  key: KeyFacts,
  condition: KeyCondition,
  ctx: DecisionContext,
  cls: FailureClass | null = null,
  always = false,
): ConditionPlan {
  const takeable = isTakeable(condition);
  const rank = takeable && !key.takeable ? ctx.initialRank() : key.rank;
  const plan: ConditionPlan = { condition, takeable, rank };
  const from = stateOf(key.condition, ctx.now);
  const to = stateOf(condition, ctx.now);
  if (always || from !== to)
    plan.event = { from, to, class: cls, reason: condition.reason, until: untilOf(condition, ctx.now) };
  return plan;
}
