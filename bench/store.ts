/**
 * Store benchmark: `bun run bench:store [--quick]`
 *
 * In-process take+release pairs per second on the SQLite store (a file in a temp dir) and on the
 * PostgreSQL store (local), measured in alternating rounds in one run, with 1 caller (latency-bound)
 * and with 32 callers at once (what a busy gateway does). Target: PostgreSQL ≥ 0.3× SQLite at 32 callers.
 * PostgreSQL runs twice: with its in-memory hot path (the default) and with it off (`hotPath: false`,
 * every take and release in SQL, as before the hot path), so the gain is measured in the same run.
 * Then the round trips one take+release makes to PostgreSQL, counted by a relay in front of the server
 * (see _pg-round-trips.ts) over one connection and one caller. Target: at most two. PostgreSQL is KEYPOOL_DATABASE_URL or
 * KEYPOOL_TEST_POSTGRES_URL when set (the run works in a schema of its own and drops it), else a
 * throwaway cluster this run starts from the server binaries (apt-get install postgresql).
 *
 * Prints a table, then one JSON line with every figure.
 */
import { SQL } from "bun";
import { join } from "node:path";
import { systemClock } from "../src/pool/clock";
import { PostgresStore } from "../src/store/postgres/postgres-store";
import { SqliteStore } from "../src/store/sqlite/sqlite-store";
import type { PoolStore } from "../src/store/types";
import { type OwnCluster, freshSchema, postgresBinDir, startOwnCluster } from "../test/helpers/postgres";
import { benchKeys } from "./_keys";
import { startRoundTripRelay } from "./_pg-round-trips";
import { printBanner, printTable, secondsSince } from "./_report";
import { BenchRun, parseBenchArgs } from "./_run";
import { median, pairedRatio, rate, ratio } from "./_stats";

const KEYS = 100;
const CALLERS = [1, 32] as const;
const RATIO_TARGET = 0.3;
const RATIO_CALLERS = 32;
const ROUND_TRIPS_TARGET = 2;
const COUNTED_PAIRS = 200;

const { quick } = parseBenchArgs(process.argv.slice(2), { script: "bench/store.ts", only: [] });
const plan = quick ? { rounds: 3, roundMs: 700, warmupMs: 300 } : { rounds: 5, roundMs: 2_000, warmupMs: 1_000 };

using run = new BenchRun("keypool-bench-store-");
const started = performance.now();
printBanner("store", quick);

let cluster: OwnCluster | undefined;
let baseUrl = process.env.KEYPOOL_DATABASE_URL || process.env.KEYPOOL_TEST_POSTGRES_URL;
if (!baseUrl) {
  const binDir = postgresBinDir();
  if (!binDir) {
    console.error(
      "no PostgreSQL: set KEYPOOL_DATABASE_URL, or install the server (apt-get install postgresql) for a throwaway cluster",
    );
    process.exit(2);
  }
  cluster = await startOwnCluster(binDir);
  baseUrl = cluster.url;
}
const schema = await freshSchema(baseUrl);
const pgVersion = await (async () => {
  await using sql = new SQL(baseUrl, { max: 1 });
  return ((await sql`SHOW server_version`) as Array<{ server_version: string }>)[0]!.server_version.split(" ")[0];
})();

const settings = { name: "bench", rotation: "lru" as const, cooldownSec: 0, leaseTtlSec: 300, recheckIntervalSec: 300 };
const sqlOnlySchema = await freshSchema(baseUrl);
const stores: Record<"sqlite" | "postgres" | "postgresSql", PoolStore> = {
  sqlite: new SqliteStore({ path: join(run.tempRoot, "bench.sqlite"), clock: systemClock }),
  postgres: await PostgresStore.open({ url: schema.url, clock: systemClock, maxConnections: 16 }),
  postgresSql: await PostgresStore.open({
    url: sqlOnlySchema.url,
    clock: systemClock,
    maxConnections: 16,
    hotPath: false,
  }),
};
for (const store of Object.values(stores)) await store.syncPools([{ settings, keys: benchKeys(KEYS) }]);

/** Pairs per second over `ms`, with `callers` loops taking and releasing at once. */
async function pairsPerSec(store: PoolStore, callers: number, ms: number): Promise<number> {
  const deadline = performance.now() + ms;
  const t0 = performance.now();
  let done = 0;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (performance.now() < deadline) {
        const lease = await store.take("bench");
        await store.release({ lease: lease.lease }, { ok: true });
        done++;
      }
    }),
  );
  return done / ((performance.now() - t0) / 1000);
}

/**
 * Round trips per take+release on PostgreSQL: a store of its own reaches the server through the counting
 * relay, on one connection, and one caller takes and releases in turn. Everything the store sends in
 * that time counts, background work included.
 */
async function roundTripsPerPair(url: string): Promise<number> {
  await using relay = await startRoundTripRelay(url);
  const store = await PostgresStore.open({ url: relay.url, clock: systemClock, maxConnections: 1 });
  try {
    await store.syncPools([{ settings, keys: benchKeys(KEYS) }]);
    for (let i = 0; i < 20; i++) await pair(store);
    const before = relay.turns();
    for (let i = 0; i < COUNTED_PAIRS; i++) await pair(store);
    return (relay.turns() - before) / COUNTED_PAIRS;
  } finally {
    await store.close();
  }
}

async function pair(store: PoolStore): Promise<void> {
  const lease = await store.take("bench");
  await store.release({ lease: lease.lease }, { ok: true });
}

const figures: Record<string, number[]> = {};
let roundTrips = Number.NaN;
try {
  for (const store of Object.values(stores))
    for (const callers of CALLERS) await pairsPerSec(store, callers, plan.warmupMs);
  for (let round = 0; round < plan.rounds; round++) {
    for (const callers of CALLERS) {
      for (const [name, store] of Object.entries(stores))
        (figures[`${name}/${callers}`] ??= []).push(await pairsPerSec(store, callers, plan.roundMs));
    }
  }
  roundTrips = await roundTripsPerPair(schema.url);
} finally {
  for (const store of Object.values(stores)) await store.close();
  await schema[Symbol.asyncDispose]();
  await sqlOnlySchema[Symbol.asyncDispose]();
  await cluster?.[Symbol.asyncDispose]();
}

const med = (key: string) => median(figures[key]!);
const rows = [
  ["callers", "SQLite pairs/s", "PostgreSQL pairs/s", "PostgreSQL/SQLite", "PostgreSQL, SQL only", "SQL only/SQLite"],
];
for (const callers of CALLERS) {
  rows.push([
    String(callers),
    rate(med(`sqlite/${callers}`)),
    rate(med(`postgres/${callers}`)),
    String(ratio(med(`postgres/${callers}`), med(`sqlite/${callers}`))),
    rate(med(`postgresSql/${callers}`)),
    String(ratio(med(`postgresSql/${callers}`), med(`sqlite/${callers}`))),
  ]);
}
printTable(rows);
// Round by round (pairedRatio); the table above shows each store's median.
const vsSqlite = pairedRatio(figures[`postgres/${RATIO_CALLERS}`]!, figures[`sqlite/${RATIO_CALLERS}`]!);
console.log();
printTable([
  ["measure", "value", "target", ""],
  [
    `PostgreSQL/SQLite pairs/s, ${RATIO_CALLERS} callers`,
    `${vsSqlite.toFixed(2)}×`,
    `≥ ${RATIO_TARGET}×`,
    vsSqlite >= RATIO_TARGET ? "ok" : "MISSED",
  ],
  [
    "PostgreSQL round trips per take+release",
    roundTrips.toFixed(2),
    `≤ ${ROUND_TRIPS_TARGET}`,
    roundTrips <= ROUND_TRIPS_TARGET ? "ok" : "MISSED",
  ],
]);
console.log(
  `\n${KEYS} keys, lru, take+release in-process; PostgreSQL ${pgVersion} on ${cluster ? "a throwaway local cluster" : "the given server"}; ${secondsSince(started)}s`,
);
console.log(
  JSON.stringify({
    bench: "store",
    keys: KEYS,
    postgres: pgVersion,
    targets: { postgresVsSqlite: RATIO_TARGET, roundTrips: ROUND_TRIPS_TARGET },
    postgresVsSqlite: vsSqlite,
    roundTripsPerPair: Math.round(roundTrips * 100) / 100,
    medians: Object.fromEntries(Object.keys(figures).map((k) => [k, Math.round(med(k))])),
    rounds: Object.fromEntries(Object.entries(figures).map(([k, v]) => [k, v.map(Math.round)])),
  }),
);
