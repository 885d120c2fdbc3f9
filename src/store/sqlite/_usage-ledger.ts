import type { Database } from "bun:sqlite";
import { FAILURE_BUCKETS, HOUR_MS, LIFETIME_BUCKET, USAGE_RETENTION_MS, type UsageTotals, emptyUsage, hourOf } from "../../pool/usage";
import type { KeyUsage } from "../types";
import type { UsageEntry } from "../usage-entry";

const FAIL_COLUMNS = FAILURE_BUCKETS.map((bucket) => `fail_${bucket}`);
const COUNT_COLUMNS = ["requests", "successes", ...FAIL_COLUMNS, "input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens", "cost_micros"];

type UsageRow = { pool: string; key_id: string } & Record<string, number>;

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
    const failed = entry.ok ? undefined : (entry.failure ?? "other");
    this.sql.upsert.run(
      pool,
      id,
      hourOf(now),
      entry.ok ? 1 : 0,
      ...FAILURE_BUCKETS.map((bucket) => (bucket === failed ? 1 : 0)),
      count(entry.tokens?.input),
      count(entry.tokens?.output),
      count(entry.tokens?.cached),
      count(entry.tokens?.cacheWrite),
      entry.costMicros,
    );
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

function count(n: number | undefined): number {
  return n === undefined || !Number.isFinite(n) ? 0 : Math.max(0, Math.round(n));
}

function totalsOf(row: UsageRow): UsageTotals {
  const usage = emptyUsage();
  usage.requests = row.requests ?? 0;
  usage.successes = row.successes ?? 0;
  for (const bucket of FAILURE_BUCKETS) usage.failures[bucket] = row[`fail_${bucket}`] ?? 0;
  usage.inputTokens = row.input_tokens ?? 0;
  usage.outputTokens = row.output_tokens ?? 0;
  usage.cachedTokens = row.cached_tokens ?? 0;
  usage.cacheWriteTokens = row.cache_write_tokens ?? 0;
  usage.costMicros = row.cost_micros ?? 0;
  return usage;
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
