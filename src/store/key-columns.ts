import type { FailureClass } from "../pool/classify";
import { EMPTY_SPEND, type SpendCaps, type SpendWindows } from "../pool/budget";
import type { KeyFacts } from "../pool/key-facts";
import type { ModelFacts } from "../pool/model-facts";
import { CLEAN_LADDER, type KeyHealth, type LadderPosition } from "../pool/key-state";
import type { KeyLimits, UsageWindows } from "../pool/limits";
import type { KeyLimitOverrides, KeyOrigin, PoolSettings, RemainingBudget } from "./types";

/** The key columns key administration reads and writes (schema step 5). */
export interface AdminColumns {
  origin: KeyOrigin;
  limit_max_concurrency: number | null;
  limit_rpm: number | null;
  limit_tpm: number | null;
  limit_daily_requests: number | null;
}

/** The key columns the failure policy reads and writes (schema step 4). */
export interface PolicyColumns {
  key_group: string | null;
  fail_class: FailureClass | null;
  rung: number;
  fail_until: number;
  remaining_requests: number | null;
  remaining_tokens: number | null;
  remaining_reset_at: number | null;
  minute_start: number;
  minute_requests: number;
  minute_tokens: number;
  day_start: number;
  day_requests: number;
}

/** The limits a key is held to: its own where it has them, else its pool's. */
export function limitsOf(row: AdminColumns, settings: PoolSettings): KeyLimits {
  if (row.limit_rpm === null && row.limit_tpm === null && row.limit_daily_requests === null)
    return poolLimitsOf(settings);
  return {
    rpm: row.limit_rpm ?? settings.rpm,
    tpm: row.limit_tpm ?? settings.tpm,
    dailyRequests: row.limit_daily_requests ?? settings.dailyRequests,
  };
}

/** Each pool's own limits, one object per settings: most keys follow their pool, and a take reads them. */
const poolLimits = new WeakMap<PoolSettings, KeyLimits>();

function poolLimitsOf(settings: PoolSettings): KeyLimits {
  let limits = poolLimits.get(settings);
  if (limits === undefined) {
    limits = Object.freeze({ rpm: settings.rpm, tpm: settings.tpm, dailyRequests: settings.dailyRequests });
    poolLimits.set(settings, limits);
  }
  return limits;
}

/** The limits a key has of its own; null where it follows its pool. */
export function overridesOf(row: AdminColumns): Required<KeyLimitOverrides> {
  return {
    maxConcurrency: row.limit_max_concurrency,
    rpm: row.limit_rpm,
    tpm: row.limit_tpm,
    dailyRequests: row.limit_daily_requests,
  };
}

/** Where a key stands on its failure class's backoff ladder. */
export function ladderOf(row: PolicyColumns): LadderPosition {
  // Most keys have no failure behind them: they share the one clean position.
  if (row.fail_class === null && row.rung === 0 && row.fail_until === 0) return CLEAN_LADDER;
  return { failClass: row.fail_class, rung: row.rung, failUntil: row.fail_until };
}

/** A key's per-minute and per-day counts, as the limit checks read them. */
export function windowsOf(row: PolicyColumns): UsageWindows {
  return {
    minuteStart: row.minute_start,
    minuteRequests: row.minute_requests,
    minuteTokens: row.minute_tokens,
    dayStart: row.day_start,
    dayRequests: row.day_requests,
  };
}

/** What the upstream last said is left for a key; null when it never said. */
export function remainingOf(row: PolicyColumns): RemainingBudget | null {
  if (row.remaining_requests === null && row.remaining_tokens === null && row.remaining_reset_at === null) return null;
  return { requests: row.remaining_requests, tokens: row.remaining_tokens, resetAt: row.remaining_reset_at };
}

/** The key columns both stores keep under the same names (SQLite stores booleans as 0/1). */
export interface DecisionColumns extends PolicyColumns, AdminColumns {
  pool: string;
  id: string;
  weight: number;
  health: KeyHealth;
  reason: string | null;
  ready_at: number;
  takeable: number | boolean;
  rank: number;
  max_concurrency: number | null;
  in_flight: number;
  consecutive_failures: number;
  next_check_at: number;
  expires_at: number | null;
  /** The key's own spend caps in micro-USD (schema step 11); null: none. Absent in a store without them. */
  budget_day_micros?: number | null;
  budget_month_micros?: number | null;
}

/** Every column of a stored key, under the names both stores use; `Flag` is how the store keeps a boolean. */
export interface KeyColumns<Flag extends number | boolean> extends DecisionColumns {
  token: string;
  takeable: Flag;
  last_used: number | null;
  last_check: number | null;
  requests: number;
  errors: number;
  last_check_status: number | null;
  last_check_latency_ms: number | null;
  source_token: string | null;
  source_refresh_token: string | null;
  refresh_token: string | null;
  refresh_owner: string | null;
  refresh_lock_until: number;
  /** The only models the key serves, `a|b` (see model-columns.ts); null: any model. */
  models: string | null;
}

/**
 * A stored key in the planners' words (src/pool/key-facts.ts); with `models`, also its models in their
 * words (src/pool/model-facts.ts), as planModelRelease reads them, in the one object.
 */
export function factsOf(row: DecisionColumns, settings: PoolSettings): KeyFacts;
export function factsOf(row: DecisionColumns, settings: PoolSettings, models: ModelFacts): KeyFacts & ModelFacts;
export function factsOf(row: DecisionColumns, settings: PoolSettings, models?: ModelFacts): KeyFacts {
  const facts: KeyFacts & Partial<ModelFacts> = {
    pool: row.pool,
    id: row.id,
    weight: row.weight,
    condition: { health: row.health, reason: row.reason, readyAt: row.ready_at },
    takeable: Boolean(row.takeable),
    rank: row.rank,
    inFlight: row.in_flight,
    maxConcurrency: row.max_concurrency,
    group: row.key_group,
    ladder: ladderOf(row),
    windows: windowsOf(row),
    limits: limitsOf(row, settings),
    consecutiveFailures: row.consecutive_failures,
    nextCheckAt: row.next_check_at,
    expiresAt: row.expires_at,
    budget: budgetOf(row),
  };
  // Set, not spread in: a release plans from these on every request.
  if (models) {
    facts.allowedModels = models.allowedModels;
    facts.models = models.models;
  }
  return facts;
}

/** A key's own spend caps; undefined when it has none. */
export function budgetOf(
  row: Pick<DecisionColumns, "budget_day_micros" | "budget_month_micros">,
): SpendCaps | undefined {
  const day = row.budget_day_micros ?? null;
  const month = row.budget_month_micros ?? null;
  if (day === null && month === null) return undefined;
  return { ...(day !== null && { dayMicros: day }), ...(month !== null && { monthMicros: month }) };
}

/** What a key or a pool spent, as both stores keep it (schema step 11). */
export interface SpendColumns {
  day_start: number;
  day_micros: number;
  day_unpriced: number;
  month_start: number;
  month_micros: number;
  month_unpriced: number;
}

export function spendOf(row: SpendColumns | null | undefined): SpendWindows {
  if (!row) return EMPTY_SPEND;
  return {
    dayStart: row.day_start,
    dayMicros: row.day_micros,
    dayUnpriced: row.day_unpriced,
    monthStart: row.month_start,
    monthMicros: row.month_micros,
    monthUnpriced: row.month_unpriced,
  };
}
