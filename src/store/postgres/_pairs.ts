import type { SQL } from "bun";
import type { PairEvent } from "../../pool/model-facts";
import { MAX_EVENTS } from "../event-log";
import { PAIR_COLUMN_NAMES, type PairColumns } from "../model-columns";
import type { KeyEvent } from "../types";
import type { Params } from "./_key-row";

/**
 * The (key, model) pairs as this store keeps them (`keypool_key_models`, schema step 4). One rule holds
 * every write of a pair together with its key: whoever writes a pair holds its key's row locked and
 * changes that row too, in the same transaction. So once a statement holds the key's row at the version
 * a release was planned from, no one has written the key's pairs since that version was written, and
 * the pair's row version the statement reads is the one that went with it: the release writes only if
 * that is the version it planned from too (see _release.ts).
 */

/** A stored pair: its columns, with its key. */
export interface PairRow extends PairColumns {
  pool: string;
  key_id: string;
}

const COLUMNS = PAIR_COLUMN_NAMES;

const TYPES: Record<(typeof COLUMNS)[number], string> = {
  model: "text",
  ready_at: "float8",
  reason: "text",
  access: "text",
  fail_class: "text",
  rung: "int",
  fail_until: "float8",
  minute_start: "float8",
  minute_requests: "float8",
  minute_tokens: "float8",
};

/** A pair as a release plans from it: its columns and its row's version (xmin); both null without a row. */
export interface SeenPair {
  model: string;
  columns: PairColumns | null;
  version: string | null;
}

/** A pair as the statements below return it: its row as JSON, with its version. */
export type PairJson = PairRow & { version: string };

export function seenPairOf(model: string, json: PairJson | null): SeenPair {
  if (json === null) return { model, columns: null, version: null };
  const { version, ...columns } = json;
  return { model, columns, version };
}

/** SQL: the pair of key `id` for `model` (SQL expressions) as PairJson, or null. */
export function pairJsonSql(pool: string, id: string, model: string): string {
  return `(SELECT to_jsonb(m) || jsonb_build_object('version', m.xmin::text) FROM keypool_key_models m
      WHERE m.pool = ${pool} AND m.key_id = ${id} AND m.model = ${model})`;
}

/** SQL: whether the pair's row is still the version seen (or still absent). */
export function pairUnchangedSql(params: Params, pool: string, id: string, seen: SeenPair): string {
  return `(SELECT m.xmin::text FROM keypool_key_models m WHERE m.pool = ${pool} AND m.key_id = ${id}
      AND m.model = ${params.add(seen.model, "text")}) IS NOT DISTINCT FROM ${params.add(seen.version, "text")}`;
}

/** What a pair's write is: its columns, or null for a pair whose row goes (pairColumnsOf). */
export interface PairWrite {
  model: string;
  columns: PairColumns | null;
}

/** Whether writing `after` over `before` (null: no row) changes anything. */
export function changesPair(before: PairColumns | null, after: PairColumns | null): boolean {
  if (before === null || after === null) return before !== after;
  return COLUMNS.some((column) => before[column] !== after[column]);
}

/** The key's pair for `model`, read by a transaction holding the key locked: current, since writers need the lock. */
export async function readPair(db: SQL, pool: string, id: string, model: string): Promise<SeenPair> {
  const [row] = (await db`SELECT *, xmin::text AS version FROM keypool_key_models
                          WHERE pool = ${pool} AND key_id = ${id} AND model = ${model}`) as PairJson[];
  return seenPairOf(model, row ?? null);
}

/**
 * The statement (or CTE body) writing one pair: an upsert (returning the row's new `version`), or a
 * delete when the pair goes. `gate` names a relation that must have a row for the write to happen (a
 * CTE such as `given`), or null.
 */
export function pairWriteSql(params: Params, pool: string, id: string, write: PairWrite, gate: string | null): string {
  const p = params.add(pool, "text");
  const k = params.add(id, "text");
  const m = params.add(write.model, "text");
  if (write.columns === null) {
    const gated = gate === null ? "" : ` AND EXISTS (SELECT 1 FROM ${gate})`;
    return `DELETE FROM keypool_key_models WHERE pool = ${p} AND key_id = ${k} AND model = ${m}${gated}`;
  }
  const columns = write.columns;
  const values = COLUMNS.slice(1).map((column) => params.add(columns[column], TYPES[column]));
  const updates = COLUMNS.slice(1)
    .map((column) => `${column} = excluded.${column}`)
    .join(", ");
  return `INSERT INTO keypool_key_models (pool, key_id, ${COLUMNS.join(", ")})
    SELECT ${p}, ${k}, ${m}, ${values.join(", ")}${gate === null ? "" : ` FROM ${gate}`}
    ON CONFLICT (pool, key_id, model) DO UPDATE SET ${updates}
    RETURNING xmin::text AS version`;
}

/** A pair's transition as the event log keeps it. */
export function pairEventOf(pool: string, key: string, event: PairEvent, at: number): KeyEvent {
  return { at, pool, key, ...event };
}

/**
 * The CTEs logging `events` (the key's and its pairs') when `gate` has a row, and pruning the log back to
 * MAX_EVENTS rows; none for no events.
 */
export function eventCtes(params: Params, events: readonly KeyEvent[], gate: string): string[] {
  if (events.length === 0) return [];
  const selects = events.map(
    (e) =>
      `SELECT ${params.add(e.at, "float8")}, ${params.add(e.pool, "text")}, ${params.add(e.key, "text")},
         ${params.add(e.model ?? null, "text")}, ${params.add(e.from, "text")}, ${params.add(e.to, "text")},
         ${params.add(e.class, "text")}, ${params.add(e.reason, "text")}, ${params.add(e.until, "float8")},
         ${params.add(e.alert ?? null, "text")}
       FROM ${gate}`,
  );
  return [
    `logged AS (INSERT INTO keypool_events (at, pool, key_id, model, from_state, to_state, class, reason, until, alert)
       ${selects.join("\n       UNION ALL ")}
       RETURNING seq)`,
    `pruned AS (DELETE FROM keypool_events WHERE seq <= (SELECT max(seq) FROM logged) - ${MAX_EVENTS})`,
  ];
}
