import type { Database } from "bun:sqlite";
import type { ModelFacts, ModelState } from "../../pool/model-facts";
import type { PairPlan } from "../../pool/plan-model";
import { type PairColumns, modelFactsOf, modelStateOf, pairColumnsOf } from "../model-columns";

/** A row of `key_models` (schema step 10). */
export interface PairRow extends PairColumns {
  pool: string;
  key_id: string;
}

/**
 * The (key, model) pairs' statements. Every method runs inside the caller's transaction (or, for the
 * reads, wherever the caller is), so a release's key plan and pair plan commit together.
 */
export class ModelPairs {
  private readonly sql: ReturnType<typeof prepare>;

  constructor(db: Database) {
    this.sql = prepare(db);
  }

  /** The key's pair for `model`, or undefined when the key has none (a fresh pair). */
  pairOf(pool: string, id: string, model: string): ModelState | undefined {
    const row = this.sql.pair.get(pool, id, model) as PairRow | null;
    return row ? modelStateOf(row) : undefined;
  }

  /** A key's models in the planners' words, for a decision about `model` (only that pair is read). */
  factsFor(pool: string, id: string, modelsColumn: string | null, model: string): ModelFacts {
    const row = this.sql.pair.get(pool, id, model) as PairRow | null;
    return modelFactsOf(modelsColumn, row ? [row] : []);
  }

  /** Every pair of the pool (or of every pool), by key id: for /status and the hot path's copy. */
  pairsByKey(pool?: string): Map<string, PairRow[]> {
    const rows = (pool === undefined ? this.sql.allPairs.all() : this.sql.poolPairs.all(pool)) as PairRow[];
    const byKey = new Map<string, PairRow[]>();
    for (const row of rows) {
      const key = `${row.pool}\n${row.key_id}`;
      const list = byKey.get(key);
      if (list) list.push(row);
      else byKey.set(key, [row]);
    }
    return byKey;
  }

  pairsOfKey(pool: string, id: string): PairRow[] {
    return this.sql.keyPairs.all(pool, id) as PairRow[];
  }

  /** Writes a planned pair: its row, or no row once the pair says nothing a missing one would not. */
  write(pool: string, id: string, plan: PairPlan, now: number): void {
    const columns = pairColumnsOf(plan.model, plan.state, now);
    if (columns === null) {
      this.sql.deletePair.run(pool, id, plan.model);
      return;
    }
    this.sql.upsertPair.run(
      pool,
      id,
      columns.model,
      columns.ready_at,
      columns.reason,
      columns.access,
      columns.fail_class,
      columns.rung,
      columns.fail_until,
      columns.minute_start,
      columns.minute_requests,
      columns.minute_tokens,
    );
  }

  /**
   * The keys of `pool` that cannot serve `model` now: their pair rests or is denied, or the tokens
   * file restricts them to other models. A take for the model skips them as it skips excluded keys.
   */
  unusableFor(pool: string, model: string, now: number): string[] {
    return (this.sql.unusable.all(pool, model, now) as Array<{ id: string }>).map((row) => row.id);
  }

  /**
   * The earliest moment after `now` a key in rotation could serve `model` (its own rest and the pair's
   * both over), or null when none will by itself (see modelReadyAtOfPool: this is its one-statement form).
   */
  soonestReadyFor(pool: string, model: string, now: number): number | null {
    return (this.sql.soonestReady.get(pool, model, now) as { at: number | null } | null)?.at ?? null;
  }

  /** A new token is a new credential: what was learned of its models starts over too. */
  forgetKey(pool: string, id: string): void {
    this.sql.deleteKeyPairs.run(pool, id);
  }
}

/** Whether the keys' `models` column (`a|b`) lets the key serve `?2`; NULL lets it serve any model. */
const SERVES = `(k.models IS NULL OR instr('|' || k.models || '|', '|' || ?2 || '|') > 0)`;

function prepare(db: Database) {
  return {
    pair: db.query(`SELECT * FROM key_models WHERE pool = ?1 AND key_id = ?2 AND model = ?3`),
    keyPairs: db.query(`SELECT * FROM key_models WHERE pool = ?1 AND key_id = ?2`),
    poolPairs: db.query(`SELECT * FROM key_models WHERE pool = ?1`),
    allPairs: db.query(`SELECT * FROM key_models`),
    upsertPair: db.query(`INSERT INTO key_models (pool, key_id, model, ready_at, reason, access, fail_class, rung,
                              fail_until, minute_start, minute_requests, minute_tokens)
                            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                            ON CONFLICT (pool, key_id, model) DO UPDATE SET ready_at = excluded.ready_at,
                              reason = excluded.reason, access = excluded.access, fail_class = excluded.fail_class,
                              rung = excluded.rung, fail_until = excluded.fail_until,
                              minute_start = excluded.minute_start, minute_requests = excluded.minute_requests,
                              minute_tokens = excluded.minute_tokens`),
    deletePair: db.query(`DELETE FROM key_models WHERE pool = ?1 AND key_id = ?2 AND model = ?3`),
    deleteKeyPairs: db.query(`DELETE FROM key_models WHERE pool = ?1 AND key_id = ?2`),
    unusable: db.query(`SELECT key_id AS id FROM key_models WHERE pool = ?1 AND model = ?2 AND ready_at > ?3
                        UNION SELECT id FROM keys k WHERE k.pool = ?1 AND NOT ${SERVES}`),
    soonestReady: db.query(`SELECT MIN(MAX(k.ready_at, COALESCE(m.ready_at, 0))) AS at
                            FROM keys k LEFT JOIN key_models m ON m.pool = k.pool AND m.key_id = k.id AND m.model = ?2
                            WHERE k.pool = ?1 AND k.takeable = 1 AND ${SERVES}
                              AND MAX(k.ready_at, COALESCE(m.ready_at, 0)) > ?3`),
  };
}
