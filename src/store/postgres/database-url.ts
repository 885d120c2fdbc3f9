import type { Config } from "../../config/types";

type Env = Record<string, string | undefined>;

export const DATABASE_URL_ENV = "KEYPOOL_DATABASE_URL";

/** The PostgreSQL URL this process should use: `store.postgres.url`, else KEYPOOL_DATABASE_URL; undefined for SQLite. */
export function databaseUrlOf(config: Pick<Config, "store">, env: Env = process.env): string | undefined {
  return config.store?.postgres?.url || env[DATABASE_URL_ENV] || undefined;
}

/** `postgres://user:MASKED@host:port/db`: the URL as it may be logged or shown, without its password or parameters. */
export function maskDatabaseUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "MASKED";
    parsed.search = "";
    return parsed.toString();
  } catch {
    return "postgres://…";
  }
}
