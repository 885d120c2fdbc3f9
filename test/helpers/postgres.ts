import { SQL } from "bun";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

/**
 * PostgreSQL for tests. `scripts/ci-postgres.sh` starts a throwaway cluster and exports
 * KEYPOOL_TEST_POSTGRES_URL; without it the PostgreSQL tests skip (and say so).
 */
export const POSTGRES_URL = process.env.KEYPOOL_TEST_POSTGRES_URL || undefined;

let announced = false;
/** Prints once per file that the PostgreSQL half of a suite did not run. */
export function announceSkip(what: string): void {
  if (POSTGRES_URL || announced) return;
  announced = true;
  console.warn(`[skip] ${what}: PostgreSQL tests skipped — KEYPOOL_TEST_POSTGRES_URL is not set (source scripts/ci-postgres.sh to run them)`);
}

/** `url` with its search_path set to `schema`: Bun sends unknown URL parameters to the server as startup parameters. */
export function withSchema(url: string, schema: string): string {
  const parsed = new URL(url);
  parsed.searchParams.set("search_path", schema);
  return parsed.toString();
}

export interface TestSchema extends AsyncDisposable {
  /** A URL whose connections use only this schema. */
  url: string;
  name: string;
}

/** A schema of its own for one test (or one store), dropped with everything in it when disposed. */
export async function freshSchema(base = POSTGRES_URL!): Promise<TestSchema> {
  const name = `kp_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const admin = new SQL(base, { max: 1 });
  await admin.unsafe(`CREATE SCHEMA ${name}`);
  return {
    url: withSchema(base, name),
    name,
    async [Symbol.asyncDispose]() {
      await admin.unsafe(`DROP SCHEMA ${name} CASCADE`);
      await admin.close();
    },
  };
}

/** The directory of PostgreSQL's server binaries (pg_ctl, initdb), if installed. */
export function postgresBinDir(): string | undefined {
  if (process.env.KEYPOOL_TEST_PG_BINDIR) return process.env.KEYPOOL_TEST_PG_BINDIR;
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  return versions.map((v) => join(root, v, "bin")).find((dir) => existsSync(join(dir, "pg_ctl")));
}
