import { SQL } from "bun";
import { describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { ManualClock } from "../../src/pool/clock";
import { DomainError } from "../../src/pool/errors";
import { MIGRATIONS } from "../../src/store/postgres/migrations";
import { PostgresStore } from "../../src/store/postgres/postgres-store";
import { createTokenCipher, keyIdOf, parseMasterKey } from "../../src/store/token-cipher";
import type { PoolStore } from "../../src/store/types";
import { POSTGRES_URL, announceSkip, freshSchema } from "../helpers/postgres";
import { runKeypool } from "../helpers/run-keypool";
import { tempDir } from "../helpers/temp-dir";
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
    const stores = await Promise.all(
      Array.from({ length: 4 }, () => PostgresStore.open({ url: schema.url, clock, maxConnections: 2 })),
    );
    try {
      await Promise.all(
        stores.map((store) => store.syncPools([{ settings: settings({ maxConcurrency: 1 }), keys: keys(4) }])),
      );
      const leases = await Promise.all(stores.map((store) => store.take("default")));
      expect(new Set(leases.map((l) => l.id)).size).toBe(4);
      await using sql = new SQL(schema.url, { max: 1 });
      expect(await sql`SELECT value FROM keypool_meta WHERE name = 'schema_version'`).toEqual([
        { value: String(MIGRATIONS.length) },
      ]);
    } finally {
      await Promise.all(stores.map((store) => store.close()));
    }
  });

  it("keeps a pair's group rest that lands between a take for the model and its release", async () => {
    await using schema = await freshSchema();
    const clock = new ManualClock();
    const store = await PostgresStore.open({ url: schema.url, clock, maxConnections: 2 });
    try {
      await store.syncPools([{ settings: settings(), keys: keys(2, { group: () => "acme" }) }]);
      const lease = await store.take("default", { model: "m-big" });
      const other = lease.id === "k0" ? "k1" : "k0";
      // The group rest writes the leased key's pair only, not what the take left of the key's row.
      await store.release({ id: other }, { ok: false, status: 429, model: "m-big", retryAfterMs: 600_000 });
      // Planned from the pair the take saw (none), this overload would rest the pair a minute over the group's ten.
      await store.release({ lease: lease.lease }, { ok: false, status: 529, model: "m-big" });
      const status = await store.status("default");
      expect(status.map((k) => [k.id, k.models["m-big"]?.until])).toEqual([
        ["k0", clock.now() + 600_000],
        ["k1", clock.now() + 600_000],
      ]);
    } finally {
      await store.close();
    }
  });

  it("counts a model's rpm exactly when instances take for it at once", async () => {
    await using schema = await freshSchema();
    const clock = new ManualClock();
    const pool = { settings: settings({ modelLimits: { "m-big": { rpm: 40 } } }), keys: keys(2) };
    const stores = await Promise.all(
      [0, 1].map(() => PostgresStore.open({ url: schema.url, clock, maxConnections: 4 })),
    );
    try {
      for (const store of stores) await store.syncPools([pool]);
      const outcomes = await Promise.all(
        Array.from({ length: 120 }, async (_, i) => {
          const store = stores[i % 2]!;
          try {
            const lease = await store.take("default", { model: "m-big" });
            await store.release({ lease: lease.lease }, { ok: true, model: "m-big" });
            return lease.id;
          } catch (error) {
            if (error instanceof DomainError && error.code === "NO_KEY_AVAILABLE") return null;
            throw error;
          }
        }),
      );
      // 40 a minute on each key, and not one more, however the takes interleave.
      expect(outcomes.filter((id) => id === "k0")).toHaveLength(40);
      expect(outcomes.filter((id) => id === "k1")).toHaveLength(40);
      expect(await stores[0]!.take("default", { model: "m-small" })).toBeDefined();
    } finally {
      await Promise.all(stores.map((store) => store.close()));
    }
  });

  it("counts a pool's spend exactly, and raises each alert once, when instances release at once", async () => {
    await using schema = await freshSchema();
    const clock = new ManualClock();
    // One input token is one micro-dollar; the pool may spend $0.001 a day, its key k0 $0.0005.
    const prices = { m: { inputPerMtok: 1, outputPerMtok: 1 } };
    const list = keys(4).map((k, i) => (i === 0 ? { ...k, budget: { dayMicros: 500 } } : k));
    const pool = { settings: settings({ prices, budget: { dayMicros: 1000 } }), keys: list };
    const stores = await Promise.all(
      [0, 1].map(() => PostgresStore.open({ url: schema.url, clock, maxConnections: 4 })),
    );
    try {
      for (const store of stores) await store.syncPools([pool]);
      const leases = [];
      for (let i = 0; i < 24; i++) leases.push({ store: stores[i % 2]!, lease: await stores[i % 2]!.take("default") });
      // 24 requests of $0.0001 each, given back at once through both instances: 2.4 times the pool's cap.
      const cost = { ok: true, model: "m", usage: { input: 100, output: 0 } };
      await Promise.all(leases.map(({ store, lease }) => store.release({ lease: lease.lease }, cost)));
      expect(await stores[1]!.poolSpend("default")).toMatchObject({ day: { spentMicros: 2400, capMicros: 1000 } });
      const k0 = (await stores[0]!.status()).find((k) => k.id === "k0")!;
      expect(k0.spend?.day.spentMicros).toBe(100 * leases.filter(({ lease }) => lease.id === "k0").length);
      expect(k0.state).toBe("cooling");
      const alerts = (await stores[0]!.events({ limit: 100 })).filter((e) => e.alert);
      expect(alerts.filter((e) => e.key === "").map((e) => e.alert)).toEqual(["budget_warning", "budget_exhausted"]);
      expect(alerts.filter((e) => e.key === "k0").map((e) => e.alert)).toEqual(["budget_warning", "budget_exhausted"]);
      expect((await failure(stores[1]!.take("default"))).code).toBe("BUDGET_EXHAUSTED");
    } finally {
      await Promise.all(stores.map((store) => store.close()));
    }
  });

  it("keeps a key's models as the last sync gave them, and its pairs while it keeps its token", async () => {
    await using schema = await freshSchema();
    const clock = new ManualClock();
    const store = await PostgresStore.open({ url: schema.url, clock, maxConnections: 2 });
    await using sql = new SQL(schema.url, { max: 1 });
    try {
      const restricted = keys(2).map((k) => (k.id === "k0" ? { ...k, models: ["m-small", "m-mini"] } : k));
      await store.syncPools([{ settings: settings(), keys: restricted }]);
      expect((await store.status("default")).map((k) => k.onlyModels)).toEqual([["m-small", "m-mini"], null]);
      await store.release({ id: "k1" }, { ok: false, status: 429, model: "m-big" });
      await store.syncPools([{ settings: settings(), keys: keys(2) }]);
      expect((await store.status("default")).map((k) => k.onlyModels)).toEqual([null, null]);
      expect(await sql`SELECT key_id, model FROM keypool_key_models`).toEqual([{ key_id: "k1", model: "m-big" }]);
      // A new token under k1 is another credential: the old one's pairs say nothing about it.
      await store.release({ id: "k0" }, { ok: false, status: 429, model: "m-big" });
      const renewed = keys(2).map((k) => (k.id === "k1" ? { ...k, token: "sk-test-renewed-000000000000" } : k));
      await store.syncPools([{ settings: settings(), keys: renewed }]);
      expect(await sql`SELECT key_id, model FROM keypool_key_models`).toEqual([{ key_id: "k0", model: "m-big" }]);
      await store.syncPools([{ settings: settings(), keys: keys(1) }]);
      expect(await sql`SELECT key_id, model FROM keypool_key_models`).toEqual([{ key_id: "k0", model: "m-big" }]);
      await store.syncPools([{ settings: settings(), keys: [] }]);
      expect(await sql`SELECT key_id, model FROM keypool_key_models`).toEqual([]);
    } finally {
      await store.close();
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
    expect(PostgresStore.open({ url: schema.url, clock, cipher: other })).rejects.toThrow(
      /other key is not the key the PostgreSQL store/,
    );
    expect(PostgresStore.open({ url: schema.url, clock })).rejects.toThrow(/holds encrypted tokens/);
  });

  it("syncs a pool of 50,000 keys, and syncs it again unchanged, with a 2 s timeout_sec", async () => {
    await using schema = await freshSchema();
    const store = await PostgresStore.open({ url: schema.url, clock: new ManualClock(), timeoutSec: 2 });
    try {
      const big = keys(50_000);
      const first = await store.syncPools([{ settings: settings({ rotation: "round_robin" }), keys: big }]);
      expect([first.default!.added.length, first.default!.kept]).toEqual([50_000, 0]);
      const again = await store.syncPools([{ settings: settings({ rotation: "round_robin" }), keys: big }]);
      expect([again.default!.added.length, again.default!.updated.length, again.default!.kept]).toEqual([0, 0, 50_000]);
      // Added in order, so round_robin starts at the first.
      expect([(await store.take("default")).id, (await store.take("default")).id]).toEqual(["k0", "k1"]);
    } finally {
      await store.close();
    }
  }, 60_000);

  it("re-encrypts the database under a new key with `keypool keys reencrypt`", async () => {
    await using schema = await freshSchema();
    using dir = tempDir();
    const [oldHex, newHex] = ["44".repeat(32), "55".repeat(32)];
    const store = await PostgresStore.open({
      url: schema.url,
      clock: new ManualClock(),
      cipher: createTokenCipher(parseMasterKey(oldHex), "old"),
    });
    await store.syncPools([{ settings: settings(), keys: keys(2) }]);
    await store.close();
    writeFileSync(dir.file("new.key"), `${newHex}\n`);
    writeFileSync(dir.file("keypool.yaml"), `tokens_file: tokens.txt\nstore:\n  postgres:\n    url: ${schema.url}\n`);
    writeFileSync(
      dir.file("tokens.txt"),
      keys(2)
        .map((k) => `${k.id},${k.token}`)
        .join("\n"),
    );

    const run = await runKeypool(["keys", "reencrypt", "--new-key-file", "new.key", "--json"], {
      cwd: dir.path,
      env: { KEYPOOL_MASTER_KEY: oldHex },
    });
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
    const newCipher = createTokenCipher(parseMasterKey(newHex), "new");
    expect(JSON.parse(run.stdout)).toMatchObject({ rewritten: 4, key_id: newCipher.keyId, was_encrypted: true });
    expect(run.stdout).toContain('"store": "postgres://');

    await using sql = new SQL(schema.url, { max: 1 });
    const stored = (await sql`SELECT token FROM keypool_keys ORDER BY id`) as Array<{ token: string }>;
    expect(stored.map((r) => keyIdOf(r.token))).toEqual([newCipher.keyId, newCipher.keyId]);
    const reopened = await PostgresStore.open({ url: schema.url, clock: new ManualClock(), cipher: newCipher });
    await reopened.syncPools([{ settings: settings(), keys: keys(2) }]);
    expect(keys(2).map((k) => k.token)).toContain((await reopened.take("default")).token);
    await reopened.close();
  });

  it("fails fast with STORE_UNAVAILABLE when nothing listens, without naming the password", async () => {
    // A port bound and closed again: nothing listens there.
    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = probe.port;
    probe.stop(true);
    const started = performance.now();
    const error = await failure(
      PostgresStore.open({
        url: `postgres://keypool:s3cret-pw@127.0.0.1:${port}/keypool`,
        clock: new ManualClock(),
        timeoutSec: 2,
      }),
    );
    expect(error.code).toBe("STORE_UNAVAILABLE");
    expect(error.message).not.toContain("s3cret-pw");
    expect(performance.now() - started).toBeLessThan(2_500);
  });
});
