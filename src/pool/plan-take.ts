/**
 * What a take does to the key it hands out: its new place in the rotation, the rest a take imposes
 * (cooldown_sec), and the request counted against rpm and daily_requests. Pure; the store writes it.
 */
import type { KeyFacts, PlannedEvent, PoolRules } from "./key-facts";
import { type KeyCondition, afterTake, restUntil, stateOf, untilOf } from "./key-state";
import { type UsageWindows, countRequest, hasRequestLimits } from "./limits";
import { type RankContext, rankAfterTake } from "./rotation";

export interface TakePlan {
  rank: number;
  condition: KeyCondition;
  inFlight: number;
  /** Set when the key has request limits: the windows after counting this take. */
  windows?: UsageWindows;
  /** Set when counting this take used a limit up and rested the key. */
  event?: PlannedEvent;
}

export function planTake(key: KeyFacts, pool: PoolRules, ctx: RankContext): TakePlan {
  // The facts are a RankedKey as they stand: inFlight is the count before this take.
  const rank = rankAfterTake(pool.rotation, key, ctx);
  let condition = afterTake(key.condition, pool, ctx.now);
  const plan: TakePlan = { rank, condition, inFlight: key.inFlight + 1 };
  if (!hasRequestLimits(key.limits)) return plan;
  const { windows, rest } = countRequest(key.windows, key.limits, ctx.now);
  plan.windows = windows;
  if (rest) {
    const rested = restUntil(condition, rest.until, rest.reason, ctx.now);
    if (rested !== condition) {
      condition = rested;
      plan.condition = rested;
      plan.event = {
        from: stateOf(key.condition, ctx.now),
        to: stateOf(rested, ctx.now),
        class: null,
        reason: rested.reason,
        until: untilOf(rested, ctx.now),
      };
    }
  }
  return plan;
}

/**
 * Whether a take of this key must be settled in the shared store before it is answered: a key with a
 * cap on leases in flight (exclusive), with request limits, or resting after each take is arbitrated
 * between processes there.
 * Every other take only moves counters and the rotation order, which may reach the store later.
 */
export function takeNeedsArbitration(key: Pick<KeyFacts, "maxConcurrency" | "limits">, pool: PoolRules): boolean {
  // A rest after each take (cooldown_sec) is a change of condition every other process must see.
  return key.maxConcurrency !== null || hasRequestLimits(key.limits) || pool.cooldownSec > 0;
}
