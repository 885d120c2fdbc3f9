import type { Rotation } from "../../pool/vocabulary";
import { DAY_MS, MINUTE_MS } from "../../pool/limits";

/**
 * The take as one statement: pick the first ready key in rank order that no other transaction holds
 * (`FOR UPDATE SKIP LOCKED`), rest it, count it against its limits, re-rank it, insert the lease and,
 * when a limit was reached, log the event — all or nothing, in one round trip.
 *
 * Why one statement cannot hand out one exclusive lease twice: the row is locked from the pick to the
 * commit, the pick's conditions (ready, in_flight < max_concurrency) are re-checked by PostgreSQL on
 * the newest row version once it is locked, and in_flight is raised in the same statement. A second
 * take, on this instance or another, either skips the locked row or — once the first has committed —
 * sees the raised in_flight.
 *
 * The transitions mirror the pure functions the SQLite store applies in JS: `afterTake`
 * (src/pool/key-state.ts), `countRequest` and `restUntil` (limits), `rankAfterTake` (rotation.ts).
 * Every value is computed from `picked`, the locked row as it is now, never from the statement's
 * snapshot, which may predate a commit the lock waited for.
 *
 * Parameters: $1 pool, $2 now, $3 the rank to start from (random) or the preferred ids (sessions),
 * $4 ids to exclude, $5 lease id, $6 lease expiry, $7 cooldown ms, $8 the new rank (random only),
 * $9 pool rpm, $10 pool daily_requests.
 */
export interface TakeVariant {
  rotation: Rotation;
  /** Walk `$3` (a list of key ids) in its order instead of the rank order: a sticky session's keys. */
  preferred: boolean;
  /** Wait for the best ready key if it is locked, instead of skipping it: the second pass when every ready key was locked. */
  wait: boolean;
}

export interface TakenRow {
  id: string;
  token: string;
}

const MAX_RANK = `(SELECT max(rank) FROM keypool_keys WHERE pool = $1 AND takeable)`;

/** weighted: the pool's virtual time, as virtualTimeOf (src/pool/rotation.ts) reads it from the shared rows. `$1` is the pool. */
export const VIRTUAL_TIME = `(SELECT rank - 1.0 / weight FROM keypool_keys WHERE pool = $1 AND takeable ORDER BY rank DESC LIMIT 1)`;

/** rankAfterTake in SQL; `p` is the picked row. */
function rankSql(rotation: Rotation): string {
  switch (rotation) {
    case "lru":
      // LRU_TIE_STEP: keys taken in the same millisecond still queue in take order.
      return `GREATEST($2::float8, COALESCE(${MAX_RANK}, 0) + 0.001)`;
    case "round_robin":
      return `COALESCE(${MAX_RANK}, 0) + 1`;
    case "random":
      return `$8::float8`;
    case "weighted":
      // A key back from a long rest starts at the virtual time, not its stale rank (see rankAfterTake).
      return `GREATEST(p.rank, COALESCE(${VIRTUAL_TIME}, p.rank)) + 1.0 / p.weight`;
    case "most_remaining":
      return `p.rank + 1`;
    case "least_busy":
      // busyRank: BUSY_STEP (1e13) per lease in flight, then recency.
      return `(p.in_flight + 1) * 1e13 + $2::float8`;
  }
}

export function takeSql(variant: TakeVariant): string {
  const where = variant.preferred ? `AND id = ANY($3::text[])` : `AND rank >= $3::float8`;
  const order = variant.preferred ? `array_position($3::text[], id)` : `rank`;
  const rpmReason = `'rpm limit (' || c.rpm || ') reached; resting until the minute window closes'`;
  const dailyReason = `'daily_requests limit (' || c.daily || ') reached; resting until the day window closes'`;
  const ready = `pool = $1 AND takeable AND ready_at <= $2::float8
    AND (max_concurrency IS NULL OR in_flight < max_concurrency)
    ${where} AND NOT (id = ANY($4::text[]))`;
  // Waiting, the statement locks at most the one row it waits for: a walk that waited on a row, found
  // it no longer ready and moved on would keep that row locked while waiting on the next — and two
  // such walks deadlock. PostgreSQL re-checks the conditions on the row once it has the lock.
  const picked = variant.wait
    ? `SELECT * FROM keypool_keys WHERE ${ready}
         AND id = (SELECT id FROM keypool_keys WHERE ${ready} ORDER BY ${order} LIMIT 1)
       FOR UPDATE`
    : `SELECT * FROM keypool_keys WHERE ${ready} ORDER BY ${order} LIMIT 1 FOR UPDATE SKIP LOCKED`;
  return `
WITH picked AS (${picked}),
windows AS (
  SELECT p.*,
    COALESCE(p.limit_rpm, $9::int) AS rpm,
    COALESCE(p.limit_daily_requests, $10::int) AS daily,
    $2::float8 < p.minute_start + ${MINUTE_MS} AS minute_open,
    $2::float8 < p.day_start + ${DAY_MS} AS day_open,
    CASE WHEN $7::float8 > 0 THEN GREATEST(p.ready_at, $2::float8 + $7::float8) ELSE p.ready_at END AS rest_ready,
    CASE WHEN $7::float8 > 0 THEN 'resting after take' ELSE p.reason END AS rest_reason
  FROM picked p
),
counted AS (
  SELECT w.*,
    w.rpm IS NOT NULL OR w.daily IS NOT NULL AS limited,
    CASE WHEN w.minute_open THEN w.minute_start ELSE $2::float8 END AS m_start,
    CASE WHEN w.minute_open THEN w.minute_requests ELSE 0 END + 1 AS m_requests,
    CASE WHEN w.minute_open THEN w.minute_tokens ELSE 0 END AS m_tokens,
    CASE WHEN w.day_open THEN w.day_start ELSE $2::float8 END AS d_start,
    CASE WHEN w.day_open THEN w.day_requests ELSE 0 END + 1 AS d_requests
  FROM windows w
),
limits AS (
  SELECT c.*,
    CASE WHEN c.rpm IS NOT NULL AND c.m_requests >= c.rpm THEN c.m_start + ${MINUTE_MS} END AS rpm_until,
    CASE WHEN c.daily IS NOT NULL AND c.d_requests >= c.daily THEN c.d_start + ${DAY_MS} END AS daily_until
  FROM counted c
),
decided AS (
  SELECT c.*,
    GREATEST(c.rpm_until, c.daily_until) AS limit_until,
    CASE WHEN c.rpm_until IS NOT NULL AND (c.daily_until IS NULL OR c.rpm_until >= c.daily_until) THEN ${rpmReason} ELSE ${dailyReason} END AS limit_reason,
    c.health IN ('unknown', 'live') AND GREATEST(c.rpm_until, c.daily_until) > $2::float8
      AND GREATEST(c.rpm_until, c.daily_until) > c.rest_ready AS rested
  FROM limits c
),
updated AS (
  UPDATE keypool_keys k SET
    rank = ${rankSql(variant.rotation)},
    ready_at = CASE WHEN p.rested THEN p.limit_until ELSE p.rest_ready END,
    reason = CASE WHEN p.rested THEN p.limit_reason ELSE p.rest_reason END,
    last_used = $2::float8,
    in_flight = k.in_flight + 1,
    requests = k.requests + 1,
    minute_start = CASE WHEN p.limited THEN p.m_start ELSE k.minute_start END,
    minute_requests = CASE WHEN p.limited THEN p.m_requests ELSE k.minute_requests END,
    minute_tokens = CASE WHEN p.limited THEN p.m_tokens ELSE k.minute_tokens END,
    day_start = CASE WHEN p.limited THEN p.d_start ELSE k.day_start END,
    day_requests = CASE WHEN p.limited THEN p.d_requests ELSE k.day_requests END
  FROM decided p
  WHERE k.pool = p.pool AND k.id = p.id
  RETURNING k.id, k.token
),
leased AS (
  INSERT INTO keypool_leases (lease, pool, key_id, taken_at, expires_at)
  SELECT $5, $1, id, $2::float8, $6::float8 FROM updated
),
logged AS (
  INSERT INTO keypool_events (at, pool, key_id, from_state, to_state, class, reason, until)
  SELECT $2::float8, pool, id, health, 'cooling', NULL, limit_reason, limit_until FROM decided WHERE rested
)
SELECT id, token FROM updated`;
}
