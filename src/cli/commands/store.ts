import { defineCommand } from "citty";
import { resolve } from "node:path";
import { copySqliteToPostgres } from "../../store/postgres/copy-from-sqlite";
import { maskDatabaseUrl } from "../../store/postgres/database-url";
import { jsonArg } from "../_shared";
import { CliExit, EXIT } from "../exit";

const migrate = defineCommand({
  meta: {
    name: "migrate",
    description:
      "Copy every pool's state from a SQLite state file into PostgreSQL (stop the keypools writing to the file first)",
  },
  args: {
    from: { type: "string", required: true, description: "sqlite:FILE — the state file to copy from" },
    to: {
      type: "string",
      required: true,
      description: "postgres:URL (or the postgres:// URL itself) — the database to copy into",
    },
    ...jsonArg,
  },
  async run({ args }) {
    const file = sqliteFileOf(args.from);
    const url = postgresUrlOf(args.to);
    const report = await copySqliteToPostgres(file, url);
    const where = maskDatabaseUrl(url);
    if (args.json) console.log(JSON.stringify({ from: file, to: where, ...report }, null, 2));
    else {
      for (const [pool, n] of Object.entries(report.pools)) {
        console.log(
          `${pool}: ${n.keys} keys, ${n.leases} open leases, ${n.events} events, ${n.usageRows} usage rows, ${n.sessions} sessions`,
        );
      }
      console.log(
        `copied ${Object.keys(report.pools).length} pools from ${file} to ${where}; point store.postgres.url (or KEYPOOL_DATABASE_URL) at it and start keypool`,
      );
    }
    return EXIT.ok;
  },
});

export default defineCommand({
  meta: { name: "store", description: "Work with the state store" },
  subCommands: { migrate },
});

function sqliteFileOf(value: string): string {
  if (!value.startsWith("sqlite:"))
    throw new CliExit(EXIT.usage, `--from: expected sqlite:FILE (e.g. sqlite:./keypool.db), got "${value}"`);
  return resolve(value.slice("sqlite:".length));
}

function postgresUrlOf(value: string): string {
  const url = value.startsWith("postgres:postgres") ? value.slice("postgres:".length) : value;
  if (!/^postgres(ql)?:\/\//.test(url))
    throw new CliExit(
      EXIT.usage,
      "--to: expected postgres:URL, e.g. postgres:postgres://keypool:PASSWORD@db.internal/keypool",
    );
  return url;
}
