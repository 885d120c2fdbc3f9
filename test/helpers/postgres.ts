import { SQL } from "bun";
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * PostgreSQL for tests. `scripts/ci-postgres.sh` starts a throwaway cluster and exports
 * KEYPOOL_TEST_POSTGRES_URL; without it the PostgreSQL tests skip (and say so).
 */
export const POSTGRES_URL = process.env.KEYPOOL_TEST_POSTGRES_URL || undefined;

/** Says, for a test file, that its PostgreSQL tests did not run and how to run them. */
export function announceSkip(what: string): void {
  if (POSTGRES_URL) return;
  console.warn(
    `[skip] ${what}: PostgreSQL tests skipped — KEYPOOL_TEST_POSTGRES_URL is not set (source scripts/ci-postgres.sh to run them)`,
  );
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

export interface OwnCluster extends AsyncDisposable {
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  url: string;
  /** `pg_ctl stop -m fast`: connections are cut, new ones refused. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data; resolves once it accepts connections. */
  start(): Promise<void>;
}

/**
 * A PostgreSQL cluster of the test's own (initdb in a temp dir, loopback, a free port), for tests
 * that stop and start the database. Under root the server runs as the `postgres` user, which
 * refuses nothing: PostgreSQL itself refuses to run as root.
 */
export async function startOwnCluster(binDir: string): Promise<OwnCluster> {
  const dir = mkdtempSync(join(tmpdir(), "keypool-pg-"));
  chmodSync(dir, 0o777);
  const asServer = (args: string[]) => (process.getuid?.() === 0 ? ["runuser", "-u", "postgres", "--", ...args] : args);
  const run = async (args: string[]) => {
    const proc = Bun.spawn(asServer(args), { stdout: "pipe", stderr: "pipe" });
    const [err, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    if (code !== 0) throw new Error(`${args[0]} exited ${code}: ${err}`);
  };
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  const data = join(dir, "data");
  await run([join(binDir, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "--no-sync"]);
  const options = `-c listen_addresses=127.0.0.1 -p ${port} -c unix_socket_directories=${dir} -c fsync=off -c max_connections=50`;
  const start = () =>
    run([join(binDir, "pg_ctl"), "-D", data, "-l", join(dir, "server.log"), "-w", "-s", "-o", options, "start"]);
  const stop = () => run([join(binDir, "pg_ctl"), "-D", data, "-m", "fast", "-w", "-s", "stop"]);
  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    start,
    stop,
    async [Symbol.asyncDispose]() {
      await run([join(binDir, "pg_ctl"), "-D", data, "-m", "immediate", "-s", "stop"]).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
