import { SQL } from "bun";
import { describe, expect, it } from "bun:test";
import { ManualClock } from "../../src/pool/clock";
import { MIGRATIONS } from "../../src/store/postgres/migrations";
import { PostgresStore } from "../../src/store/postgres/postgres-store";
import { createTokenCipher, parseMasterKey } from "../../src/store/token-cipher";
import type { PoolStore } from "../../src/store/types";
import { POSTGRES_URL, announceSkip, freshSchema } from "../helpers/postgres";
import { failure, keys, settings } from "./contract/_harness";
import { describeStoreContract } from "./contract/describe-store-contract";

announceSkip("test/store/postgres-store.test.ts");

// Every test gets a schema of its own; stores opened on it share it like instances on one database do.
describeStoreContract(
  "PostgresStore",
  async () => {
    const schema = await freshSchema();
    const stores: PoolStore[] = [];
    return {
      async open(options) {
        const store = await PostgresStore.open({ url: schema.url, maxConnections: 4, ...options });
        stores.push(store);
        return store;
      },
      async [Symbol.asyncDispose]() {
        for (const store of stores) await store.close().catch(() => {});
        await schema[Symbol.asyncDispose]();
      },
    };
  },
  { skip: !POSTGRES_URL },
);

describe.skipIf(!POSTGRES_URL)("PostgresStore", () => {
  it("migrates once when several instances start at once, and they all serve the pool", async () => {
    await using schema = await freshSchema();
    const clock = new ManualClock();
    const stores = await Promise.all(Array.from({ length: 4 }, () => PostgresStore.open({ url: schema.url, clock, maxConnections: 2 })));
    try {
      await Promise.all(stores.map((store) => store.syncPools([{ settings: settings({ maxConcurrency: 1 }), keys: keys(4) }])));
      const leases = await Promise.all(stores.map((store) => store.take("default")));
      expect(new Set(leases.map((l) => l.id)).size).toBe(4);
      await using sql = new SQL(schema.url, { max: 1 });
      expect(await sql`SELECT value FROM keypool_meta WHERE name = 'schema_version'`).toEqual([{ value: String(MIGRATIONS.length) }]);
    } finally {
      await Promise.all(stores.map((store) => store.close()));
    }
  });

  it("keeps tokens encrypted in the database and refuses to open it with another key", async () => {
    await using schema = await freshSchema();
    const clock = new ManualClock();
    const cipher = createTokenCipher(parseMasterKey("11".repeat(32)), "test key");
    const store = await PostgresStore.open({ url: schema.url, clock, cipher });
    await store.syncPools([{ settings: settings(), keys: keys(2) }]);
    expect((await store.take("default")).token).toBe(keys(2)[0]!.token);
    await store.close();
    await using sql = new SQL(schema.url, { max: 1 });
    const dump = JSON.stringify(await sql`SELECT * FROM keypool_keys`);
    expect(dump.includes(keys(2)[0]!.token)).toBe(false);

    const other = createTokenCipher(parseMasterKey("22".repeat(32)), "other key");
    expect(PostgresStore.open({ url: schema.url, clock, cipher: other })).rejects.toThrow(/other key is not the key the PostgreSQL store/);
    expect(PostgresStore.open({ url: schema.url, clock })).rejects.toThrow(/holds encrypted tokens/);
  });

  it("fails fast with STORE_UNAVAILABLE when nothing listens, without naming the password", async () => {
    // A port bound and closed again: nothing listens there.
    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = probe.port;
    probe.stop(true);
    const started = performance.now();
    const error = await failure(PostgresStore.open({ url: `postgres://keypool:s3cret-pw@127.0.0.1:${port}/keypool`, clock: new ManualClock(), timeoutSec: 2 }));
    expect(error.code).toBe("STORE_UNAVAILABLE");
    expect(error.message).not.toContain("s3cret-pw");
    expect(performance.now() - started).toBeLessThan(2_500);
  });
});
