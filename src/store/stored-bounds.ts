import {
  MAX_BUDGET_USD,
  MAX_COOLDOWN_MS,
  MAX_DURATION_SEC,
  MAX_KEY_LIMIT,
  MAX_REMAINING,
  MAX_TIME_MS,
  MAX_WEIGHT,
  MIN_WEIGHT,
  microsOfUsd,
} from "../pool/bounds";
import { FAILURE_BUCKETS } from "../pool/usage";

/**
 * The ranges every stored number must be in, and the repair that brings a store back into them when
 * it opens. Edges bound what comes in (src/pool/bounds); this repairs what an older keypool, a hand
 * edit or a copy wrote before they did: a rest until the year 275,000, an infinite rank, a weight of
 * 1e-320. Left alone, one such row makes /status answer 500 or every weighted take fail, for good.
 */

/** Where a column's upper bound comes from: a constant, or a span after the moment the store opens. */
type Ceiling = number | { afterNow: number };

interface ColumnBound {
  column: string;
  min: number;
  max: Ceiling;
  /** Out of range, the column becomes this instead of the nearest bound (a rank has no nearest sane value). */
  reset?: number;
  /** What a PostgreSQL NaN becomes; the nearest bound by default (PostgreSQL sorts NaN above every number). */
  nan?: number;
}

const COUNT = Number.MAX_SAFE_INTEGER;
const REST = { afterNow: MAX_COOLDOWN_MS };
const DURATION = { afterNow: MAX_DURATION_SEC * 1000 };
const time = (column: string): ColumnBound => ({ column, min: 0, max: MAX_TIME_MS });
const rest = (column: string): ColumnBound => ({ column, min: 0, max: REST });
const count = (column: string, max = COUNT): ColumnBound => ({ column, min: 0, max });
const counter = (column: string) => count(column);
const limit = (column: string): ColumnBound => ({ column, min: 1, max: MAX_KEY_LIMIT });

/** Per table (SQLite name; PostgreSQL adds its `keypool_` prefix), the bounded columns. */
export const STORED_BOUNDS: Record<string, ColumnBound[]> = {
  keys: [
    // A rest, a rate-limit reset, a refresh lock, the next check: never further ahead than the longest rest.
    ...["ready_at", "fail_until", "remaining_reset_at", "refresh_lock_until", "next_check_at"].map(rest),
    ...["expires_at", "last_used", "last_check", "minute_start", "day_start"].map(time),
    { column: "weight", min: MIN_WEIGHT, max: MAX_WEIGHT, nan: 1 },
    // Rotation starts an out-of-range rank again from the pool's front; any finite rank is one it can advance.
    { column: "rank", min: -1e300, max: 1e300, reset: 0 },
    ...["remaining_requests", "remaining_tokens"].map((c) => count(c, MAX_REMAINING)),
    ...["requests", "errors", "minute_requests", "minute_tokens", "day_requests"].map(counter),
    ...["in_flight", "rung", "consecutive_failures"].map(counter),
    ...["max_concurrency", "limit_max_concurrency", "limit_rpm", "limit_tpm", "limit_daily_requests"].map(limit),
    ...["budget_day_micros", "budget_month_micros"].map(
      (column): ColumnBound => ({ column, min: 1, max: microsOfUsd(MAX_BUDGET_USD) }),
    ),
  ],
  key_models: [
    ...["ready_at", "fail_until"].map(rest),
    time("minute_start"),
    ...["rung", "minute_requests", "minute_tokens"].map(counter),
  ],
  spend: [
    ...["day_start", "month_start"].map(time),
    ...["day_micros", "month_micros", "day_unpriced", "month_unpriced"].map(counter),
  ],
  leases: [time("taken_at"), { column: "expires_at", min: 0, max: DURATION }],
  events: [time("at"), time("until")],
  sessions: [
    { column: "expires_at", min: 0, max: DURATION },
    ...["requests", "input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens"].map(counter),
  ],
  // Not `hour`: it is part of the key, and two rows clamped to one hour would collide. Nothing shows it as a time.
  usage_hourly: [
    ...["requests", "successes", "input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens"].map(counter),
    count("cost_micros"),
    ...FAILURE_BUCKETS.map((bucket) => count(`fail_${bucket}`)),
  ],
};

export type Dialect = "sqlite" | "postgres";

/**
 * One UPDATE per table that puts every out-of-range value back in range, touching only rows that
 * need it (one scan each). Bounds are written as literals: they are this module's own numbers.
 */
export function repairStatements(dialect: Dialect, now: number): string[] {
  return Object.entries(STORED_BOUNDS).map(([table, columns]) => {
    const name = dialect === "postgres" ? `keypool_${table}` : table;
    const sets = columns.map((c) => `${quote(c.column)} = ${repaired(c, dialect, now)}`);
    const where = columns.map((c) => outOfRange(c, dialect, now)).join(" OR ");
    return `UPDATE ${name} SET ${sets.join(", ")} WHERE ${where}`;
  });
}

function ceiling(max: Ceiling, now: number): number {
  return typeof max === "number" ? max : now + max.afterNow;
}

function repaired(c: ColumnBound, dialect: Dialect, now: number): string {
  const col = quote(c.column);
  const max = literal(ceiling(c.max, now), dialect);
  const min = literal(c.min, dialect);
  const nanValue = literal(c.reset ?? c.nan ?? c.min, dialect);
  const nan = dialect === "postgres" ? `WHEN ${col} = 'NaN'::float8 THEN ${nanValue} ` : "";
  if (c.reset !== undefined) {
    return `CASE ${nan}WHEN ${col} < ${min} OR ${col} > ${max} THEN ${literal(c.reset, dialect)} ELSE ${col} END`;
  }
  return `CASE ${nan}WHEN ${col} < ${min} THEN ${min} WHEN ${col} > ${max} THEN ${max} ELSE ${col} END`;
}

function outOfRange(c: ColumnBound, dialect: Dialect, now: number): string {
  const col = quote(c.column);
  return `${col} < ${literal(c.min, dialect)} OR ${col} > ${literal(ceiling(c.max, now), dialect)}`;
}

/** `rank` and `until` are fine as names, but quoting every column keeps keywords from mattering. */
function quote(column: string): string {
  return `"${column}"`;
}

/** A number as SQL: PostgreSQL compares a float8 column with a float8 literal; 1e300 needs no cast in SQLite. */
function literal(n: number, dialect: Dialect): string {
  const text = Number.isInteger(n) && Math.abs(n) <= Number.MAX_SAFE_INTEGER ? String(n) : n.toExponential();
  return dialect === "postgres" ? `${text}::float8` : text;
}
