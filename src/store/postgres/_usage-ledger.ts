import type { SQL } from "bun";
import { HOUR_MS, LIFETIME_BUCKET, USAGE_RETENTION_MS, hourOf } from "../../pool/usage";
import type { KeyUsage } from "../types";
import { USAGE_COUNT_COLUMNS, type UsageEntry, usageIncrements, usageTotalsOf as totalsOf } from "../usage-entry";
import { Params } from "./_key-row";

const COUNT_COLUMNS = USAGE_COUNT_COLUMNS;
const ADDS = COUNT_COLUMNS.map((c) => `${c} = keypool_usage_hourly.${c} + excluded.${c}`).join(", ");

const FOLD = `
  WITH old AS (
    DELETE FROM keypool_usage_hourly WHERE hour > ${LIFETIME_BUCKET} AND hour < $1::float8
    RETURNING pool, key_id, ${COUNT_COLUMNS.join(", ")}
  )
  INSERT INTO keypool_usage_hourly (pool, key_id, hour, ${COUNT_COLUMNS.join(", ")})
  SELECT pool, key_id, ${LIFETIME_BUCKET}, ${COUNT_COLUMNS.map((c) => `sum(${c})`).join(", ")} FROM old GROUP BY pool, key_id
  ON CONFLICT (pool, key_id, hour) DO UPDATE SET ${ADDS}`;

const SUMS = `
  SELECT u.pool, u.key_id, ${COUNT_COLUMNS.map((c) => `sum(u.${c})::float8 AS ${c}`).join(", ")},
    EXISTS (SELECT 1 FROM keypool_keys k WHERE k.pool = u.pool AND k.id = u.key_id) AS present
  FROM keypool_usage_hourly u WHERE ($1::text IS NULL OR u.pool = $1) AND u.hour >= $2::float8
  GROUP BY u.pool, u.key_id ORDER BY u.pool, u.key_id`;

type UsageRow = { pool: string; key_id: string; present: boolean } & Record<string, number>;

/** The hourly usage ledger, shared by every instance: the same UPSERT from each adds up in one row. */
export class PostgresUsageLedger {
  private nextFoldAt = 0;

  /** One release's counts, on their own. */
  record(sql: SQL, pool: string, id: string, entry: UsageEntry, now: number): Promise<unknown> {
    const params = new Params();
    return sql.unsafe(this.upsert("(SELECT 1) one", params, pool, id, entry, now), params.values);
  }

  /**
   * One release's counts as a statement to put in a larger one: added once per row of `source`
   * (none: nothing is counted). Every release is 1 request.
   */
  upsert(source: string, params: Params, pool: string, id: string, entry: UsageEntry, now: number): string {
    const counts = usageIncrements(entry).map((n) => params.add(n, "float8"));
    return `INSERT INTO keypool_usage_hourly (pool, key_id, hour, ${COUNT_COLUMNS.join(", ")})
      SELECT ${params.add(pool, "text")}, ${params.add(id, "text")}, ${params.add(hourOf(now), "float8")}, 1,
        ${counts.join(", ")}
      FROM ${source}
      ON CONFLICT (pool, key_id, hour) DO UPDATE SET ${ADDS}`;
  }

  /** Once an hour per process: folds buckets past retention into each key's lifetime row (hour 0). */
  async foldIfDue(sql: SQL, now: number): Promise<void> {
    if (now < this.nextFoldAt) return;
    this.nextFoldAt = hourOf(now) + HOUR_MS;
    await sql.unsafe(FOLD, [hourOf(now - USAGE_RETENTION_MS)]);
  }

  async query(sql: SQL, pool: string | undefined, since: number): Promise<KeyUsage[]> {
    const rows = (await sql.unsafe(SUMS, [pool ?? null, since])) as UsageRow[];
    return rows.map((row) => ({ pool: row.pool, id: row.key_id, present: row.present, usage: totalsOf(row) }));
  }
}
