import { EMPTY_SPEND, budgetRest, isBudgetRest } from "./budget";
import type { DecisionContext, KeyFacts } from "./key-facts";
import { restUntil, stateOf } from "./key-state";
import { type ConditionPlan, planCondition } from "./plan-check";

/**
 * A key's own caps changed (the admin API, or its tokens file on a reload), `key.budget` being the
 * new ones and `key.spend` what it already spent: it rests at once when that reaches a new cap, and
 * a rest an old cap imposed ends when the new caps leave room. Null when nothing changes.
 */
export function planCapsChange(key: KeyFacts, ctx: DecisionContext): ConditionPlan | null {
  const { condition } = key;
  const rest = budgetRest(key.spend ?? EMPTY_SPEND, key.budget, ctx.now);
  if (rest) {
    const next = restUntil(condition, rest.until, rest.reason, ctx.now);
    return next === condition ? null : planCondition(key, next, ctx);
  }
  if (stateOf(condition, ctx.now) !== "cooling" || !isBudgetRest(condition.reason)) return null;
  return planCondition(key, { ...condition, readyAt: 0, reason: "spend cap raised" }, ctx);
}
