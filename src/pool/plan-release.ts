/**
 * What a release does: the outcome a caller reported, classified and applied to the key (its rest,
 * ladder, quarantine), what the upstream's headers and usage said about its budget and limits, its
 * place in the rotation, the rest it passes on to its quota group, and when it is next probed.
 * Pure; both stores load the key, call planRelease and write the plan.
 */
import type { FailureClass } from "./vocabulary";
import type { DecisionContext, KeyFacts, PlannedEvent, PoolRules } from "./key-facts";
import {
  DEFAULT_REVIVE_INTERVAL_SEC,
  type KeyCondition,
  type LadderPosition,
  type Outcome,
  afterOutcome,
  awaitsRevival,
  isTakeable,
  jitteredMs,
  restUntil,
  stateOf,
  untilOf,
} from "./key-state";
import { type UsageWindows, countTokens } from "./limits";
import { type BudgetCrossing, type SpendWindows, EMPTY_SPEND, hasCaps, planSpend } from "./budget";
import { costMicros, priceOf } from "./pricing";
import { type RateLimitBudget, exhaustedUntil } from "./rate-limit-headers";
import { FULL_BUDGET, rankAfterRelease } from "./rotation";

export interface ReleasePlan {
  condition: KeyCondition;
  takeable: boolean;
  rank: number;
  /** Leases in flight on the key after this release. */
  inFlight: number;
  /** A failure that was the key's fault: counted in its errors. */
  penalised: boolean;
  /** The class the outcome was given (undefined for a success or an unclassified failure). */
  failureClass?: FailureClass;
  ladder: LadderPosition;
  /** What the upstream's rate-limit headers said is left: the store keeps it as the key's remaining budget. */
  budget?: RateLimitBudget;
  /** The key's windows after counting the tokens the request used. */
  windows?: UsageWindows;
  event?: PlannedEvent;
  /** Keys of the same group rest with this one (see planGroupRest). */
  groupRest?: GroupRest;
  /** The key awaits a probe to come back: its next check is pulled forward to at most this time. */
  reviveCheckAt?: number;
  /** What the request cost at the pool's prices (micro-USD), for the usage ledger. */
  costMicros: number;
  /** Under a cap, the request's cost is unknown (no price for its model, or a success without usage). */
  unpriced: boolean;
  /** The key's spend counters after this request, when it cost something (or an unknown amount). */
  spend?: SpendWindows;
  /** Thresholds of the key's own caps the cost crossed, for the budget alerts. */
  budgetCrossings?: BudgetCrossing[];
  /**
   * Whether the key's condition or ladder changed: other processes' next take must see it, so the
   * store settles it at once. A plain success only moves counters and the order, which may wait.
   */
  changesCondition: boolean;
  /**
   * A first success of a key on probation (unknown → live), and nothing else: both states are handed
   * out alike, so no other process decides differently for not knowing it yet.
   */
  confirmsHealth: boolean;
}

export interface GroupRest {
  group: string;
  until: number;
  cls: FailureClass;
  reason: string;
  /** Set when the rest is a (key, model) pair's: members rest that pair only (see planModelGroupRest). */
  model?: string;
}

export function planRelease(
  key: KeyFacts,
  outcome: Outcome,
  pool: PoolRules,
  ctx: DecisionContext,
  leasesGiven: number,
): ReleasePlan {
  const { now } = ctx;
  const { condition: was, ladder: climbed } = key;
  const effect = afterOutcome(
    {
      health: was.health,
      reason: was.reason,
      readyAt: was.readyAt,
      failClass: climbed.failClass,
      rung: climbed.rung,
      failUntil: climbed.failUntil,
    },
    outcome,
    pool,
    now,
    ctx.random,
  );
  // An outcome that leaves the key's condition (or ladder) as it was keeps the key's own object.
  let condition: KeyCondition = sameCondition(effect, key.condition)
    ? key.condition
    : { health: effect.health, reason: effect.reason, readyAt: effect.readyAt };
  let remaining: number | undefined;
  let windows: UsageWindows | undefined;
  if (outcome.budget) {
    const until = exhaustedUntil(outcome.budget, now);
    remaining = until === undefined ? outcome.budget.requests : FULL_BUDGET;
    if (until !== undefined)
      condition = restUntil(condition, until, "upstream rate-limit budget spent; resting until it resets", now);
  }
  const tokens = outcome.tokens ?? (outcome.usage && outcome.usage.input + outcome.usage.output);
  if (tokens !== undefined && tokens > 0) {
    const counted = countTokens(key.windows, tokens, key.limits, now);
    windows = counted.windows;
    if (counted.rest) condition = restUntil(condition, counted.rest.until, counted.rest.reason, now);
  }
  const cost = outcome.usage ? costMicros(pool.prices, outcome.model, outcome.usage) : 0;
  const unpriced = isUnpriced(outcome, pool, key);
  let spent: ReturnType<typeof planSpend> | undefined;
  if (cost > 0 || unpriced) {
    spent = planSpend(key.spend ?? EMPTY_SPEND, cost, unpriced, key.budget, now);
    // The key's own cap: it rests until the window resets, like a spent rpm.
    if (spent.rest) condition = restUntil(condition, spent.rest.until, spent.rest.reason, now);
  }
  const takeable = isTakeable(condition);
  const inFlight = Math.max(0, key.inFlight - leasesGiven);
  // A key coming back into rotation re-enters the order as a new key would.
  const rank =
    takeable && !key.takeable
      ? ctx.initialRank()
      : rankAfterRelease(pool.rotation, { rank: key.rank, weight: key.weight, inFlight }, now, remaining);
  const penalised = !outcome.ok && effect.class !== "client";
  const ladder: LadderPosition = sameLadder(effect, key.ladder)
    ? key.ladder
    : { failClass: effect.failClass, rung: effect.rung, failUntil: effect.failUntil };
  const from = stateOf(key.condition, now);
  const to = stateOf(condition, now);
  const plan: ReleasePlan = {
    condition,
    takeable,
    rank,
    inFlight,
    penalised,
    failureClass: effect.class,
    ladder,
    costMicros: cost,
    unpriced,
    changesCondition:
      !sameCondition(condition, key.condition) || takeable !== key.takeable || !sameLadder(ladder, key.ladder),
    confirmsHealth:
      key.condition.health === "unknown" &&
      condition.health === "live" &&
      condition.readyAt === key.condition.readyAt &&
      takeable === key.takeable &&
      sameLadder(ladder, key.ladder),
  };
  if (outcome.budget) plan.budget = outcome.budget;
  if (windows) plan.windows = windows;
  if (spent) {
    plan.spend = spent.spend;
    if (spent.crossings.length > 0) plan.budgetCrossings = spent.crossings;
  }
  if (penalised || from !== to)
    plan.event = { from, to, class: effect.class ?? null, reason: condition.reason, until: untilOf(condition, now) };
  if ((effect.class === "rate_limit" || effect.class === "quota") && key.group !== null) {
    plan.groupRest = {
      group: key.group,
      until: effect.readyAt,
      cls: effect.class,
      reason: `${effect.class} on key ${key.id} of group ${key.group}; resting with it`,
    };
  }
  if (awaitsRevival(condition.health) && !awaitsRevival(key.condition.health)) {
    // A key a caller found broken is re-probed on the revive schedule, not at its next routine check.
    plan.reviveCheckAt = now + jitteredMs(pool.reviveIntervalSec ?? DEFAULT_REVIVE_INTERVAL_SEC, ctx.random);
  }
  return plan;
}

/**
 * Where a cap applies, a request whose cost cannot be known is counted as unknown, never as $0: its
 * usage names a model without a price, or it succeeded and reported no usage at all.
 */
function isUnpriced(outcome: Outcome, pool: PoolRules, key: KeyFacts): boolean {
  if (!hasCaps(key.budget) && !hasCaps(pool.budget)) return false;
  if (outcome.usage) return priceOf(pool.prices, outcome.model) === undefined;
  return outcome.ok;
}

/**
 * A group member's share of a rate limit or spent quota: it rests until the same time. Null when it
 * changes nothing (already resting longer, or out for another reason).
 */
export function planGroupRest(
  member: Pick<KeyFacts, "condition">,
  rest: GroupRest,
  now: number,
): { condition: KeyCondition; event: PlannedEvent } | null {
  const rested = restUntil(member.condition, rest.until, rest.reason, now);
  if (rested.readyAt === member.condition.readyAt) return null;
  return {
    condition: rested,
    // Logged even when the state stays "cooling": the reason and the end of the rest changed.
    event: {
      from: stateOf(member.condition, now),
      to: stateOf(rested, now),
      class: rest.cls,
      reason: rested.reason,
      until: untilOf(rested, now),
    },
  };
}

function sameCondition(a: KeyCondition, b: KeyCondition): boolean {
  return a.health === b.health && a.reason === b.reason && a.readyAt === b.readyAt;
}

function sameLadder(a: LadderPosition, b: LadderPosition): boolean {
  return a.failClass === b.failClass && a.rung === b.rung && a.failUntil === b.failUntil;
}
