import type { Database } from "bun:sqlite";
import { type SpendWindows, currentSpend, utcDayStart, utcMonthStart } from "../../pool/budget";
import { type SpendColumns, spendOf } from "../key-columns";

/** The pool's own row in `spend`: its keys' total. */
export const POOL_TOTAL = "";

/**
 * What capped keys and pools spent in the current UTC day and month (schema step 11). Every method
 * runs inside the caller's transaction: a release's cost, the key's rest and the pool's total commit
 * together, so two processes on one file never both spend the last cent.
 */
export class SpendCounters {
  private readonly sql: ReturnType<typeof prepare>;

  constructor(db: Database) {
    this.sql = prepare(db);
  }

  /** A key's spend (or, with POOL_TOTAL, the pool's). */
  of(pool: string, id: string): SpendWindows {
    return spendOf(this.sql.get.get(pool, id) as SpendColumns | null);
  }

  write(pool: string, id: string, w: SpendWindows): void {
    this.sql.put.run(pool, id, w.dayStart, w.dayMicros, w.dayUnpriced, w.monthStart, w.monthMicros, w.monthUnpriced);
  }

  /** Every row of a pool (or of every pool), keyed "pool\nid". */
  all(pool?: string): Map<string, SpendWindows> {
    const rows = (pool === undefined ? this.sql.all.all() : this.sql.pool.all(pool)) as Array<
      SpendColumns & { pool: string; key_id: string }
    >;
    return new Map(rows.map((row) => [`${row.pool}\n${row.key_id}`, spendOf(row)]));
  }

  /**
   * Brings a newly capped key's or pool's counters up to what the usage ledger already holds for the
   * current windows, so spend before the cap was set is not counted as $0. Only ever raises a counter:
   * the ledger folds hours older than its retention (8 days), so for a month it is a lower bound.
   */
  catchUp(pool: string, id: string, now: number): void {
    const stored = this.of(pool, id);
    const before = currentSpend(stored, now);
    const day = this.ledgerSince(pool, id, utcDayStart(now));
    const month = this.ledgerSince(pool, id, utcMonthStart(now));
    if (day <= before.dayMicros && month <= before.monthMicros && before === stored) return;
    this.write(pool, id, {
      ...before,
      dayMicros: Math.max(before.dayMicros, day),
      monthMicros: Math.max(before.monthMicros, month),
    });
  }

  forgetPool(pool: string): void {
    this.sql.forgetPool.run(pool);
  }

  private ledgerSince(pool: string, id: string, since: number): number {
    const row = (
      id === POOL_TOTAL ? this.sql.poolLedger.get(pool, since) : this.sql.keyLedger.get(pool, id, since)
    ) as {
      micros: number | null;
    } | null;
    return row?.micros ?? 0;
  }
}

function prepare(db: Database) {
  return {
    get: db.query(`SELECT * FROM spend WHERE pool = ?1 AND key_id = ?2`),
    all: db.query(`SELECT * FROM spend`),
    pool: db.query(`SELECT * FROM spend WHERE pool = ?1`),
    put: db.query(`INSERT INTO spend (pool, key_id, day_start, day_micros, day_unpriced, month_start, month_micros,
                     month_unpriced) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                   ON CONFLICT (pool, key_id) DO UPDATE SET day_start = excluded.day_start,
                     day_micros = excluded.day_micros, day_unpriced = excluded.day_unpriced,
                     month_start = excluded.month_start, month_micros = excluded.month_micros,
                     month_unpriced = excluded.month_unpriced`),
    forgetPool: db.query(`DELETE FROM spend WHERE pool = ?1`),
    // The ledger's hour rows from `since` on (the lifetime bucket, hour 0, is never in a current window).
    keyLedger: db.query(
      `SELECT SUM(cost_micros) AS micros FROM usage_hourly WHERE pool = ?1 AND key_id = ?2 AND hour >= ?3`,
    ),
    poolLedger: db.query(`SELECT SUM(cost_micros) AS micros FROM usage_hourly WHERE pool = ?1 AND hour >= ?2`),
  };
}
