import type { Rotation } from "../../pool/vocabulary";
import { pairJsonSql } from "./_pairs";

/**
 * The take as one statement: pick the key chooseKey (src/pool/choose-key.ts) would pick among those
 * no other transaction holds (`FOR UPDATE SKIP LOCKED`), count it as taken, re-rank it, rest it when
 * the pool rests keys after each take, and insert the lease — all or nothing, in one round trip.
 *
 * Why one statement cannot hand out one exclusive lease twice: the row is locked from the pick to the
 * commit, the pick's conditions (ready, in_flight < max_concurrency) are re-checked by PostgreSQL on
 * the newest row version once it is locked, and in_flight is raised in the same statement. A second
 * take, on this instance or another, either skips the locked row or — once the first has committed —
 * sees the raised in_flight.
 *
 * What the statement decides is planTake (src/pool/plan-take.ts) for a key without request limits:
 * the rank is the rotation's fragment below (rankAfterTake, computed from the locked row, never from
 * the statement's snapshot, which may predate a commit the lock waited for) and the rest after a take
 * comes in as parameters the store got from afterTake. A key with request limits (rpm,
 * daily_requests) is picked and returned but not taken: counting its request is planTake's, so the
 * store takes it in a transaction that calls the planner (see `pickSql`).
 *
 * A take that names a model walks only keys usable for it (usableForModelSql). Their pairs are read in
 * the statement's snapshot: unlike the key's own rest, which PostgreSQL re-checks on the locked row, a
 * pair's rest committed after the statement began and before it locked the row goes unseen, and the key
 * is handed out as it would have been a moment earlier. Where that would break a count (a model's rpm),
 * the store re-reads the pair under the lock and undoes the take (see countModelTake).
 *
 * Parameters: $1 pool, $2 now, $3 the rank to start from or the preferred ids (sessions), $4 ids to
 * exclude, $5 lease id, $6 lease expiry, $7 the earliest ready_at after the take (0: no rest),
 * $8 the rest's reason (null: no rest), $9 the new rank (random only), $10 pool rpm,
 * $11 pool daily_requests, and for a take that names a model ($12, see `model`) the model.
 */
export interface TakeVariant {
  rotation: Rotation;
  /** Walk `$3` (a list of key ids) in its order instead of the rank order: a sticky session's keys. */
  preferred: boolean;
  /** Wait for the best ready key if it is locked, instead of skipping it: the second pass when every ready key was locked. */
  wait: boolean;
  /**
   * The take names a model: only keys that may serve it (isUsableForModel) are walked, the lease keeps
   * the model, and the taken row comes with the key's pair for it (see takeSql).
   */
  model: boolean;
}

/**
 * isUsableForModel in SQL, for the row `keypool_keys` under the walk: the key lists the model (or no
 * models at all) and its pair for the model is not resting. `model` is the parameter holding the model.
 */
export function usableForModelSql(model: string): string {
  return `(keypool_keys.models IS NULL OR ${model}::text = ANY(string_to_array(keypool_keys.models, '|')))
      AND NOT EXISTS (SELECT 1 FROM keypool_key_models m WHERE m.pool = keypool_keys.pool
        AND m.key_id = keypool_keys.id AND m.model = ${model}::text AND m.ready_at > $2::float8)`;
}

const MAX_RANK = `(SELECT max(rank) FROM keypool_keys WHERE pool = $1 AND takeable)`;

/** weighted: the pool's virtual time, as virtualTimeOf (src/pool/rotation.ts) reads it from the shared rows. `$1` is the pool. */
export const VIRTUAL_TIME = `(SELECT rank - 1.0 / weight FROM keypool_keys WHERE pool = $1 AND takeable ORDER BY rank DESC LIMIT 1)`;

/**
 * rankAfterTake in SQL, the one rotation-specific fragment of this store; `p` is the locked row.
 * A test runs random pools through it and through rankAfterTake.
 */
function rankSql(rotation: Rotation): string {
  switch (rotation) {
    case "lru":
      // LRU_TIE_STEP: keys taken in the same millisecond still queue in take order.
      return `GREATEST($2::float8, COALESCE(${MAX_RANK}, 0) + 0.001)`;
    case "round_robin":
      return `COALESCE(${MAX_RANK}, 0) + 1`;
    case "random":
      return `$9::float8`;
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

/**
 * chooseKey's rule over the rows (chooseKeyForModel's, for a take that names a model): ready (isReady),
 * usable for the model and not excluded; a session's keys in its order, or the rank order from `$3`
 * on, wrapping around to the beginning when nothing ready lies after `$3`; ties by the smaller id. Ids
 * compare byte by byte (COLLATE "C"), as JavaScript compares them, whatever the database's collation
 * says. The row comes locked, with its version (xmin) for writes that must find it unchanged.
 * Parameters $1–$4 as for takeSql; `model` is the model's parameter when the variant names one.
 */
export function pickSql(variant: Omit<TakeVariant, "rotation">, model = "$12"): string {
  const forModel = variant.model ? `\n      AND ${usableForModelSql(model)}` : "";
  const ready = `pool = $1 AND takeable AND ready_at <= $2::float8
      AND (max_concurrency IS NULL OR in_flight < max_concurrency) AND NOT (id = ANY($4::text[]))${forModel}`;
  const row = `SELECT *, xmin::text AS row_version FROM keypool_keys`;
  const walk = (from: string, lock: string) =>
    variant.preferred
      ? `${row} WHERE ${ready} AND id = ANY($3::text[]) ORDER BY array_position($3::text[], id) LIMIT 1 ${lock}`
      : `${row} WHERE ${ready} ${from} ORDER BY rank, id COLLATE "C" LIMIT 1 ${lock}`;
  if (variant.wait) {
    // Waiting, the statement locks at most the one row it waits for: a walk that waited on a row, found
    // it no longer ready and moved on would keep that row locked while waiting on the next — and two
    // such walks deadlock. PostgreSQL re-checks the conditions on the row once it has the lock.
    const id = (from: string) => `(SELECT id FROM (${walk(from, "")}) w)`;
    const chosen = variant.preferred ? id("") : `COALESCE(${id("AND rank >= $3::float8")}, ${id("")})`;
    return `${row} WHERE ${ready} AND id = ${chosen} FOR UPDATE`;
  }
  if (variant.preferred) return walk("", "FOR UPDATE SKIP LOCKED");
  // The wrap is read only when the walk from `$3` found nothing (a one-time filter).
  return `WITH after AS (${walk("AND rank >= $3::float8", "FOR UPDATE SKIP LOCKED")}),
    wrapped AS (${walk("", "FOR UPDATE SKIP LOCKED")})
    SELECT * FROM after UNION ALL SELECT * FROM wrapped WHERE NOT EXISTS (SELECT 1 FROM after)`;
}

/**
 * The take statement; each row it returns says whether the key was taken (`taken`) or only picked.
 * Naming a model, a taken row also carries the key's pair for it (`pair`, PairJson or null: see
 * _pairs.ts) as the statement's snapshot has it, and whether that is the pair as it is under the row's
 * lock (`pair_seen`): it is when no one changed the row between the snapshot and the lock, since every
 * write of a pair changes its key's row too.
 */
export function takeSql(variant: TakeVariant): string {
  const limited = `COALESCE(p.limit_rpm, $10::int) IS NOT NULL
    OR COALESCE(p.limit_daily_requests, $11::int) IS NOT NULL`;
  const leaseModel = variant.model ? ", model" : "";
  const leaseModelValue = variant.model ? ", $12::text" : "";
  const pair = variant.model
    ? `,
  ${pairJsonSql("u.pool", "u.id", "$12::text")} AS pair,
  (SELECT s.xmin::text FROM keypool_keys s WHERE s.pool = u.pool AND s.id = u.id)
    = (SELECT row_version FROM picked) AS pair_seen`
    : "";
  const noPair = variant.model ? ", NULL::jsonb, false" : "";
  return `
WITH picked AS (${pickSql(variant)}),
updated AS (
  UPDATE keypool_keys k SET
    rank = ${rankSql(variant.rotation)},
    ready_at = GREATEST(k.ready_at, $7::float8),
    reason = COALESCE($8::text, k.reason),
    last_used = $2::float8,
    in_flight = k.in_flight + 1,
    requests = k.requests + 1
  FROM picked p
  WHERE k.pool = p.pool AND k.id = p.id AND NOT (${limited})
  RETURNING k.*, k.xmin::text AS row_version
),
leased AS (
  INSERT INTO keypool_leases (lease, pool, key_id, taken_at, expires_at${leaseModel})
  SELECT $5, $1, id, $2::float8, $6::float8${leaseModelValue} FROM updated
)
SELECT true AS taken, u.*${pair} FROM updated u
UNION ALL
SELECT false, p.*${noPair} FROM picked p WHERE NOT EXISTS (SELECT 1 FROM updated)`;
}
