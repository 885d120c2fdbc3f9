import type { Database } from "bun:sqlite";
import { HOUR_MS, LIFETIME_BUCKET, USAGE_RETENTION_MS, hourOf } from "../../pool/usage";
import type { KeyUsage } from "../types";
import {
  USAGE_COUNT_COLUMNS,
  type UsageEntry,
  type UsageRow,
  usageIncrements,
  usageTotalsOf as totalsOf,
} from "../usage-entry";

const COUNT_COLUMNS = USAGE_COUNT_COLUMNS;

/**
 * The hourly usage ledger (`usage_hourly`). `record` runs inside the release's transaction and is
 * one UPSERT; once an hour it also folds buckets past retention into each key's lifetime row.
 */
export class UsageLedger {
  private readonly sql: ReturnType<typeof prepare>;
  private nextFoldAt = 0;

  constructor(db: Database) {
    this.sql = prepare(db);
  }

  record(pool: string, id: string, entry: UsageEntry, now: number): void {
    this.sql.upsert.run(pool, id, hourOf(now), ...usageIncrements(entry));
    if (now >= this.nextFoldAt) this.fold(now);
  }

  /** Folds hourly buckets older than the retention into each key's lifetime row (hour 0). */
  fold(now: number): void {
    this.nextFoldAt = hourOf(now) + HOUR_MS;
    const cutoff = hourOf(now - USAGE_RETENTION_MS);
    this.sql.foldOld.run(cutoff);
    this.sql.deleteOld.run(cutoff);
  }

  /** Sums per key of the buckets from `since` on, in `pool` or every pool. */
  query(pool: string | undefined, since: number): KeyUsage[] {
    const rows = this.sql.sums.all(pool ?? null, since) as UsageRow[];
    return rows.map((row) => ({ pool: row.pool, id: row.key_id, present: row.present === 1, usage: totalsOf(row) }));
  }

  forgetPool(pool: string): void {
    this.sql.deletePool.run(pool);
  }
}

function prepare(db: Database) {
  // Every release is 1 request; the other counts are ?4 (successes) onwards, after pool, key and hour.
  const values = ["1", ...COUNT_COLUMNS.slice(1).map((_, i) => `?${i + 4}`)];
  const adds = COUNT_COLUMNS.map((c) => `${c} = ${c} + excluded.${c}`).join(", ");
  const sums = COUNT_COLUMNS.map((c) => `SUM(u.${c}) AS ${c}`).join(", ");
  return {
    upsert: db.query(`INSERT INTO usage_hourly (pool, key_id, hour, ${COUNT_COLUMNS.join(", ")})
                      VALUES (?1, ?2, ?3, ${values.join(", ")})
                      ON CONFLICT (pool, key_id, hour) DO UPDATE SET ${adds}`),
    foldOld: db.query(`INSERT INTO usage_hourly (pool, key_id, hour, ${COUNT_COLUMNS.join(", ")})
                       SELECT pool, key_id, ${LIFETIME_BUCKET}, ${COUNT_COLUMNS.map((c) => `SUM(${c})`).join(", ")}
                       FROM usage_hourly WHERE hour > ${LIFETIME_BUCKET} AND hour < ?1 GROUP BY pool, key_id
                       ON CONFLICT (pool, key_id, hour) DO UPDATE SET ${adds}`),
    deleteOld: db.query(`DELETE FROM usage_hourly WHERE hour > ${LIFETIME_BUCKET} AND hour < ?1`),
    sums: db.query(`SELECT u.pool AS pool, u.key_id AS key_id, ${sums},
                      EXISTS (SELECT 1 FROM keys k WHERE k.pool = u.pool AND k.id = u.key_id) AS present
                    FROM usage_hourly u WHERE (?1 IS NULL OR u.pool = ?1) AND u.hour >= ?2
                    GROUP BY u.pool, u.key_id ORDER BY u.pool, u.key_id`),
    deletePool: db.query(`DELETE FROM usage_hourly WHERE pool = ?1`),
  };
}
