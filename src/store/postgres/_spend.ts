import type { SQL } from "bun";
import { type SpendWindows, utcDayStart, utcMonthStart } from "../../pool/budget";
import { type SpendColumns, spendOf } from "../key-columns";

/** The pool's own row in `keypool_spend`: its keys' total. */
export const POOL_TOTAL = "";

type SpendRow = SpendColumns & { pool: string; key_id: string };

/**
 * What capped keys and pools spent in the current UTC day and month (schema step 5), shared by every
 * instance. A key's row is written only by whoever holds the key's row locked (a release, a sync), so
 * reading it under that lock reads it current. The pool's total is added to by releases of all its
 * keys: each locks it (`total`) after its keys, reads, plans and writes it before committing, so two
 * instances never both count from the same total and a threshold is crossed by exactly one release.
 */
export class PostgresSpend {
  /** A key's spend (or, with POOL_TOTAL, the pool's), as the statement's snapshot has it. */
  async of(db: SQL, pool: string, id: string): Promise<SpendWindows> {
    const [row] = (await db`SELECT * FROM keypool_spend WHERE pool = ${pool} AND key_id = ${id}`) as SpendRow[];
    return spendOf(row);
  }

  /**
   * The pool's total, locked until the transaction ends. The upsert creates the row on the first
   * spend and otherwise locks the newest version of it, whatever the transaction's snapshot.
   */
  async lockTotal(tx: SQL, pool: string): Promise<SpendWindows> {
    const [row] = (await tx`INSERT INTO keypool_spend (pool, key_id) VALUES (${pool}, ${POOL_TOTAL})
      ON CONFLICT (pool, key_id) DO UPDATE SET day_start = keypool_spend.day_start RETURNING *`) as SpendRow[];
    return spendOf(row);
  }

  write(tx: SQL, pool: string, id: string, w: SpendWindows): Promise<unknown> {
    return tx`INSERT INTO keypool_spend (pool, key_id, day_start, day_micros, day_unpriced, month_start, month_micros,
                month_unpriced)
              VALUES (${pool}, ${id}, ${w.dayStart}, ${w.dayMicros}, ${w.dayUnpriced}, ${w.monthStart}, ${w.monthMicros},
                ${w.monthUnpriced})
              ON CONFLICT (pool, key_id) DO UPDATE SET day_start = excluded.day_start,
                day_micros = excluded.day_micros, day_unpriced = excluded.day_unpriced,
                month_start = excluded.month_start, month_micros = excluded.month_micros,
                month_unpriced = excluded.month_unpriced`;
  }

  /** Every row of a pool (or of every pool), keyed "pool\nid". */
  async all(db: SQL, pool?: string): Promise<Map<string, SpendWindows>> {
    const rows = (await db`SELECT * FROM keypool_spend
                           WHERE (${pool ?? null}::text IS NULL OR pool = ${pool ?? null})`) as SpendRow[];
    return new Map(rows.map((row) => [`${row.pool}\n${row.key_id}`, spendOf(row)]));
  }

  /**
   * Brings newly capped keys' (and, with POOL_TOTAL among `ids`, the pool's) counters up to what the
   * usage ledger already holds for the current windows, so spend before the cap was set is not counted
   * as $0. Only ever raises a counter, and starts a passed window over: the ledger folds hours older
   * than its retention (8 days), so for a month it is a lower bound. One statement for the whole pool.
   */
  catchUp(tx: SQL, pool: string, ids: readonly string[], now: number): Promise<unknown> {
    if (ids.length === 0) return Promise.resolve();
    const [day, month] = [utcDayStart(now), utcMonthStart(now)];
    // The lifetime bucket (hour 0) is never in a current window.
    const since = (start: number) => `(SELECT COALESCE(sum(u.cost_micros), 0) FROM keypool_usage_hourly u
        WHERE u.pool = $1 AND (t.id = '' OR u.key_id = t.id) AND u.hour >= ${start}::float8)`;
    const kept = (column: string, start: string) =>
      `CASE WHEN s.${start} = excluded.${start} THEN s.${column} ELSE 0 END`;
    return tx.unsafe(
      `INSERT INTO keypool_spend AS s (pool, key_id, day_start, day_micros, month_start, month_micros)
       SELECT $1, t.id, ${day}::float8, ${since(day)}, ${month}::float8, ${since(month)}
       FROM unnest($2::text[]) AS t(id)
       ON CONFLICT (pool, key_id) DO UPDATE SET
         day_micros = GREATEST(${kept("day_micros", "day_start")}, excluded.day_micros),
         day_unpriced = ${kept("day_unpriced", "day_start")},
         day_start = excluded.day_start,
         month_micros = GREATEST(${kept("month_micros", "month_start")}, excluded.month_micros),
         month_unpriced = ${kept("month_unpriced", "month_start")},
         month_start = excluded.month_start
       WHERE s.day_start <> excluded.day_start OR s.month_start <> excluded.month_start
         OR s.day_micros < excluded.day_micros OR s.month_micros < excluded.month_micros`,
      [pool, ids],
    );
  }

  /** Rows of keys that are gone (none: the pool's too). */
  forget(tx: SQL, pool: string, ids?: readonly string[]): Promise<unknown> {
    return ids === undefined
      ? tx`DELETE FROM keypool_spend WHERE pool = ${pool}`
      : tx`DELETE FROM keypool_spend WHERE pool = ${pool} AND key_id = ANY(${ids}::text[])`;
  }
}
