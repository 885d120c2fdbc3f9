import { Database } from "bun:sqlite";
import { SQL } from "bun";
import { existsSync } from "node:fs";
import { ConfigError } from "../../config/errors";
import { MIGRATIONS as SQLITE_MIGRATIONS } from "../sqlite/migrations";
import { PAIR_COLUMN_NAMES } from "../model-columns";
import { keyIdOf } from "../token-cipher";
import { PostgresStore } from "./postgres-store";

export interface CopyReport {
  pools: Record<
    string,
    {
      keys: number;
      leases: number;
      events: number;
      usageRows: number;
      sessions: number;
      pairs: number;
      spendRows: number;
    }
  >;
}

// Columns both schemas have, by table; SQLite's 0/1 flags become booleans.
const KEY_COLUMNS = [
  "pool",
  "id",
  "token",
  "weight",
  "health",
  "reason",
  "ready_at",
  "takeable",
  "rank",
  "max_concurrency",
  "in_flight",
  "last_used",
  "last_check",
  "requests",
  "errors",
  "last_check_ok",
  "last_check_status",
  "last_check_latency_ms",
  "last_check_reason",
  "consecutive_failures",
  "source_token",
  "source_refresh_token",
  "refresh_token",
  "expires_at",
  "next_check_at",
  "refresh_owner",
  "refresh_lock_until",
  "key_group",
  "fail_class",
  "rung",
  "fail_until",
  "remaining_requests",
  "remaining_tokens",
  "remaining_reset_at",
  "minute_start",
  "minute_requests",
  "minute_tokens",
  "day_start",
  "day_requests",
  "origin",
  "limit_max_concurrency",
  "limit_rpm",
  "limit_tpm",
  "limit_daily_requests",
] as const;
const BOOLEAN_COLUMNS = new Set(["takeable", "last_check_ok"]);
/**
 * Columns and tables of later schema steps: model-aware keys (SQLite step 10, PostgreSQL step 4) and
 * spend caps (SQLite step 11, PostgreSQL step 5). A state file from before a step has none of its
 * columns, and is copied without them: its keys serve any model, have no caps and have spent nothing.
 */
const LATER_COLUMNS: Record<string, readonly string[]> = {
  keys: ["models", "budget_day_micros", "budget_month_micros"],
  leases: ["model"],
  events: ["model", "alert"],
};
const TABLES = {
  leases: {
    from: "leases",
    to: "keypool_leases",
    columns: ["lease", "pool", "key_id", "taken_at", "expires_at"],
  },
  events: {
    from: "events",
    to: "keypool_events",
    columns: ["at", "pool", "key_id", "from_state", "to_state", "class", "reason", "until"],
    order: "seq",
  },
  pairs: {
    from: "key_models",
    to: "keypool_key_models",
    columns: ["pool", "key_id", ...PAIR_COLUMN_NAMES],
    // A pair is deleted with its key here; a state file may still hold one whose key is gone.
    where: "EXISTS (SELECT 1 FROM keys k WHERE k.pool = key_models.pool AND k.id = key_models.key_id)",
  },
  spendRows: {
    from: "spend",
    to: "keypool_spend",
    columns: [
      "pool",
      "key_id",
      "day_start",
      "day_micros",
      "day_unpriced",
      "month_start",
      "month_micros",
      "month_unpriced",
    ],
  },
  usageRows: {
    from: "usage_hourly",
    to: "keypool_usage_hourly",
    columns: [
      "pool",
      "key_id",
      "hour",
      "requests",
      "successes",
      "fail_rate_limit",
      "fail_quota",
      "fail_auth",
      "fail_overloaded",
      "fail_timeout",
      "fail_network",
      "fail_client",
      "fail_other",
      "input_tokens",
      "output_tokens",
      "cached_tokens",
      "cache_write_tokens",
      "cost_micros",
    ],
  },
  sessions: {
    from: "sessions",
    to: "keypool_sessions",
    columns: [
      "pool",
      "session",
      "key_id",
      "detour_id",
      "expires_at",
      "requests",
      "input_tokens",
      "output_tokens",
      "cached_tokens",
      "cache_write_tokens",
    ],
  },
} as const;
const BATCH = 500;

/**
 * Copies every pool's state from a SQLite state file into PostgreSQL: keys with their health, rests,
 * ladders, counters, models and spend caps, open leases, the event log (with its alerts), the usage
 * ledger, sticky sessions, the (key, model) pairs and what keys and pools spent. Pools
 * already in the database with the same names are replaced; others are left alone. Tokens are copied
 * as stored: an encrypted file stays encrypted under the same master key, and its key check comes
 * along. One transaction: the database has all of it or none.
 */
export async function copySqliteToPostgres(
  file: string,
  url: string,
  options: { timeoutSec?: number } = {},
): Promise<CopyReport> {
  if (!existsSync(file)) throw new ConfigError([`--from: no state file at ${file}`]);
  const source = new Database(file, { readonly: true });
  try {
    const version = (source.query("PRAGMA user_version").get() as { user_version: number }).user_version;
    if (version !== SQLITE_MIGRATIONS.length) {
      throw new ConfigError([
        `--from: ${file} has schema version ${version}, this keypool writes ${SQLITE_MIGRATIONS.length} — run this keypool on it once (keypool status -c …) so it is upgraded, then copy`,
      ]);
    }
    const check = (
      source.query("SELECT value FROM meta WHERE name = 'token_key_check'").get() as { value: string } | null
    )?.value;
    await PostgresStore.prepareSchema(url, options.timeoutSec);
    const sql = new SQL(url, { max: 1 });
    try {
      return await sql.begin(async (tx) => {
        const pools = (
          source.query("SELECT DISTINCT pool FROM keys ORDER BY pool").all() as Array<{ pool: string }>
        ).map((r) => r.pool);
        const report: CopyReport = { pools: {} };
        for (const pool of pools) {
          for (const table of [
            "keypool_leases",
            "keypool_keys",
            "keypool_events",
            "keypool_usage_hourly",
            "keypool_sessions",
            "keypool_spend",
          ]) {
            await tx.unsafe(`DELETE FROM ${table} WHERE pool = $1`, [pool]);
          }
          report.pools[pool] = { keys: 0, leases: 0, events: 0, usageRows: 0, sessions: 0, pairs: 0, spendRows: 0 };
        }
        const keyColumns = withLaterColumns(source, "keys", KEY_COLUMNS);
        const keyRows = source.query(`SELECT ${keyColumns.join(", ")} FROM keys`).all() as Array<
          Record<string, unknown>
        >;
        await insertAll(
          tx,
          "keypool_keys",
          keyColumns,
          keyRows.map((row) => mapBooleans(row)),
        );
        for (const row of keyRows) report.pools[row.pool as string]!.keys++;
        for (const [name, table] of Object.entries(TABLES) as Array<
          [keyof typeof TABLES, (typeof TABLES)[keyof typeof TABLES]]
        >) {
          if (columnsOf(source, table.from).size === 0) continue;
          const columns = withLaterColumns(source, table.from, table.columns);
          const where = "where" in table ? ` WHERE ${table.where}` : "";
          const order = "order" in table ? ` ORDER BY ${table.order}` : "";
          const rows = source.query(`SELECT ${columns.join(", ")} FROM ${table.from}${where}${order}`).all() as Array<
            Record<string, unknown>
          >;
          await insertAll(tx, table.to, columns, rows);
          for (const row of rows) if (report.pools[row.pool as string]) report.pools[row.pool as string]![name]++;
        }
        if (check) {
          // Tokens are copied as ciphertext: the database must hold no tokens under another master key.
          const [held] = (await tx`SELECT value FROM keypool_meta WHERE name = 'token_key_check'`) as Array<{
            value: string;
          }>;
          if (held && keyIdOf(held.value) !== keyIdOf(check)) {
            throw new ConfigError([
              `--to: the database's tokens are encrypted under another master key (key id ${keyIdOf(held.value)}) than ${file}'s (${keyIdOf(check)}); copy into a database of its own, or re-encrypt one side first`,
            ]);
          }
          await tx`INSERT INTO keypool_meta (name, value) VALUES ('token_key_check', ${check}) ON CONFLICT (name) DO UPDATE SET value = excluded.value`;
        }
        return report;
      });
    } finally {
      await sql.close();
    }
  } finally {
    source.close();
  }
}

/** The table's columns in the state file; none for a table it lacks. */
function columnsOf(source: Database, table: string): Set<string> {
  const rows = source.query(`PRAGMA table_info(${table})`).all() as Array<{ name: string }>;
  return new Set(rows.map((row) => row.name));
}

/** `columns`, with the table's later columns the state file has (see LATER_COLUMNS). */
function withLaterColumns(source: Database, table: string, columns: readonly string[]): readonly string[] {
  const present = columnsOf(source, table);
  return [...columns, ...(LATER_COLUMNS[table] ?? []).filter((column) => present.has(column))];
}

function mapBooleans(row: Record<string, unknown>): Record<string, unknown> {
  const out = { ...row };
  for (const column of BOOLEAN_COLUMNS)
    if (out[column] !== null && out[column] !== undefined) out[column] = out[column] === 1 || out[column] === true;
  return out;
}

async function insertAll(
  tx: SQL,
  table: string,
  columns: readonly string[],
  rows: Array<Record<string, unknown>>,
): Promise<void> {
  for (let i = 0; i < rows.length; i += BATCH) {
    const batch = rows.slice(i, i + BATCH);
    const values = batch
      .map((_, r) => `(${columns.map((_, c) => `$${r * columns.length + c + 1}`).join(", ")})`)
      .join(", ");
    await tx.unsafe(
      `INSERT INTO ${table} (${columns.join(", ")}) VALUES ${values}`,
      batch.flatMap((row) => columns.map((c) => row[c] ?? null)),
    );
  }
}
