import { SQL } from "bun";
import { describe, expect, it } from "bun:test";
import { ManualClock } from "../../src/pool/clock";
import { PostgresStore } from "../../src/store/postgres/postgres-store";
import type { Lease } from "../../src/store/types";
import { POSTGRES_URL, type TestSchema, announceSkip, freshSchema } from "../helpers/postgres";
import { keys, noKey, seededRandom, settings, use } from "./contract/_harness";

announceSkip("test/store/postgres-hot-path.test.ts");

/**
 * Two instances on one schema, each deciding plain takes and releases on its own copy of the pool
 * (src/store/postgres/_hot-path.ts): what one changes, the other's next take sees; counters and
 * leases reach the database with the flush; what a killed instance had not flushed is all it loses.
 */
async function twoInstances(schema: TestSchema, n = 3, pool = settings()) {
  const clock = new ManualClock();
  const open = (seed: number) =>
    PostgresStore.open({ url: schema.url, clock, random: seededRandom(seed), maxConnections: 4 });
  const a = await open(1);
  const b = await open(2);
  for (const store of [a, b]) await store.syncPools([{ settings: pool, keys: keys(n) }]);
  // Every key starts live (its first success confirms it), so what the tests count is plain pairs.
  for (let i = 0; i < n; i++) await a.release({ id: `k${i}` }, { ok: true });
  return {
    a,
    b,
    clock,
    async [Symbol.asyncDispose]() {
      await a.close();
      await b.close();
    },
  };
}

async function requestsOf(store: PostgresStore): Promise<Record<string, number>> {
  return Object.fromEntries((await store.status("default")).map((k) => [k.id, k.requests]));
}

describe.skipIf(!POSTGRES_URL)("PostgreSQL hot path across two instances", () => {
  it("sees a change made by the other instance at its very next take: disable, quarantine, rest", async () => {
    await using schema = await freshSchema();
    await using instances = await twoInstances(schema, 2);
    const { a, b } = instances;
    // b's copy is loaded and in use.
    for (let i = 0; i < 4; i++) await use(b);
    for (let round = 0; round < 10; round++) {
      const off = `k${round % 2}`;
      const on = `k${(round + 1) % 2}`;
      await a.updateKey("default", on, { enabled: true });
      await a.updateKey("default", off, { enabled: false });
      // No wait in between: the take was sent after a's change committed.
      const lease = await b.take("default");
      expect(lease.id).toBe(on);
      await b.release({ lease: lease.lease }, { ok: true });
    }
    await a.updateKey("default", "k0", { enabled: true });
    await a.updateKey("default", "k1", { enabled: true });
    expect(new Set([await use(b), await use(b)])).toEqual(new Set(["k0", "k1"]));
    // A 401 quarantines k0 and a 429 rests k1, both through a: b has nothing left to hand out.
    await a.release({ id: "k0" }, { ok: false, status: 401 });
    await a.release({ id: "k1" }, { ok: false, status: 429 });
    await noKey(b.take("default"));
  });

  it("hands out a key the other instance added, and never one it removed, at its very next take", async () => {
    await using schema = await freshSchema();
    await using instances = await twoInstances(schema, 2);
    const { a, b } = instances;
    for (let i = 0; i < 4; i++) await use(b);
    await a.addKey("default", { id: "x", token: "sk-test-added-by-a-000000000", weight: 1 });
    await b.release({ id: "x" }, { ok: true });
    const others = { exclude: ["k0", "k1"] };
    for (let i = 0; i < 3; i++) expect(await use(b, others)).toBe("x");
    await a.removeKey("default", "x");
    await noKey(b.take("default", others));
    expect(new Set([await use(b), await use(b), await use(b)])).toEqual(new Set(["k0", "k1"]));
  });

  it("confirms a key's first success with the flush, unless the other instance moved it out of unknown first", async () => {
    await using schema = await freshSchema();
    const clock = new ManualClock();
    const open = () => PostgresStore.open({ url: schema.url, clock, random: seededRandom(3), maxConnections: 4 });
    const a = await open();
    const b = await open();
    try {
      for (const store of [a, b]) await store.syncPools([{ settings: settings(), keys: keys(2) }]);
      const first = await b.take("default");
      const second = await b.take("default");
      // Both successes are decided in b's memory; meanwhile a quarantines the second key.
      await b.release({ lease: first.lease }, { ok: true });
      await b.release({ lease: second.lease }, { ok: true });
      await a.release({ id: second.id }, { ok: false, status: 401 });
      const states = Object.fromEntries((await b.status("default")).map((k) => [k.id, k.state]));
      expect(states).toEqual({ [first.id]: "live", [second.id]: "quarantined" });
      const events = (await a.events({ limit: 10 })).map((e) => `${e.key}:${e.from}->${e.to}`);
      expect(events).toEqual([`${second.id}:unknown->quarantined`, `${first.id}:unknown->live`]);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("reads its pools whole when the key log was pruned past the version its copy read", async () => {
    await using schema = await freshSchema();
    const { a, b } = await twoInstances(schema, 2);
    const admin = new SQL(schema.url, { max: 1 });
    try {
      for (let i = 0; i < 4; i++) await use(b);
      await a.updateKey("default", "k0", { enabled: false });
      // The entry naming k0 is gone: b can only learn of the change by reading the pool again.
      await admin`DELETE FROM keypool_key_log`;
      for (let i = 0; i < 4; i++) expect(await use(b)).toBe("k1");
    } finally {
      await admin.close();
      await a.close();
      await b.close();
    }
  });

  it("keeps the key log to its last 10,000 versions, pruned by the writers themselves", async () => {
    await using schema = await freshSchema();
    const { a, b } = await twoInstances(schema, 2);
    const admin = new SQL(schema.url, { max: 1 });
    try {
      for (let i = 0; i < 4; i++) await use(b);
      // As if 20,997 changes had been made since b last looked.
      await admin`UPDATE keypool_version SET v = 20998`;
      await a.updateKey("default", "k0", { enabled: false });
      const [before] = await admin`SELECT min(v)::float8 AS first FROM keypool_key_log`;
      expect(before.first).toBeLessThan(100);
      // The change that reaches version 21,000 drops every entry at or below 11,000.
      await a.updateKey("default", "k1", { enabled: false });
      await a.updateKey("default", "k1", { enabled: true });
      const [after] = await admin`SELECT min(v)::float8 AS first FROM keypool_key_log`;
      expect(after.first).toBe(20999);
      for (let i = 0; i < 4; i++) expect(await use(b)).toBe("k1");
    } finally {
      await admin.close();
      await a.close();
      await b.close();
    }
  });

  it("never hands out an exclusive lease twice: capped keys are arbitrated in SQL by both", async () => {
    await using schema = await freshSchema();
    await using instances = await twoInstances(schema, 1);
    const { a, b } = instances;
    // Keys with a cap of their own, in a pool whose other key has none.
    for (const id of ["c0", "c1", "c2"])
      await a.addKey("default", {
        id,
        token: `sk-test-capped-${id}-00000000`,
        weight: 1,
        limits: { maxConcurrency: 1 },
      });
    await a.updateKey("default", "k0", { enabled: false });
    for (const id of ["c0", "c1", "c2"]) await a.release({ id }, { ok: true });
    const attempts = await Promise.allSettled(
      Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? a : b).take("default")),
    );
    const held = attempts.flatMap((r) => (r.status === "fulfilled" ? [r.value.id] : []));
    expect(held.sort()).toEqual(["c0", "c1", "c2"]);
    for (const r of attempts) if (r.status === "rejected") expect(r.reason.code).toBe("NO_KEY_AVAILABLE");
    const inFlight = Object.fromEntries((await b.status("default")).map((k) => [k.id, k.inFlight]));
    expect(inFlight).toEqual({ c0: 1, c1: 1, c2: 1, k0: 0 });
  });

  it("writes counters, leases and usage with the flush; a lease it wrote is given back through the other", async () => {
    await using schema = await freshSchema();
    await using instances = await twoInstances(schema, 2);
    const { a, b } = instances;
    const before = await requestsOf(b);
    for (let i = 0; i < 6; i++) await use(a);
    const held: Lease = await a.take("default");
    // The flush comes by itself within FLUSH_EVERY_MS; b sees it once it has.
    const arrived = await waitFor(
      async () => sum(await requestsOf(b)) - sum(before),
      (n) => n === 7,
    );
    expect(arrived).toBe(7);
    expect((await b.status("default")).find((k) => k.id === held.id)?.inFlight).toBe(1);
    const usage = await b.usage({ pool: "default", window: "all" });
    expect(usage.keys.reduce((n, k) => n + k.usage.requests, 0)).toBeGreaterThanOrEqual(6);
    await b.release({ lease: held.lease }, { ok: true });
    expect((await a.status("default")).map((k) => k.inFlight)).toEqual([0, 0]);
  });

  it("loses at most what it had not flushed when killed: no lease, no slot, and written leases expire", async () => {
    await using schema = await freshSchema();
    const { a, b, clock } = await twoInstances(schema, 2);
    try {
      for (let i = 0; i < 4; i++) await use(a);
      const written = await a.take("default");
      // status writes what memory holds first: 4 pairs and one open lease are in the database now.
      const flushed = await requestsOf(a);
      for (let i = 0; i < 3; i++) await use(a);
      const unwritten = await a.take("default");
      await a.closeAbruptly();

      // The last pairs and the unwritten lease are gone with a; the written lease holds its slot until it expires.
      expect(await requestsOf(b)).toEqual(flushed);
      const inFlight = () => b.status("default").then((s) => Object.fromEntries(s.map((k) => [k.id, k.inFlight])));
      expect(await inFlight()).toEqual({ [written.id]: 1, [written.id === "k0" ? "k1" : "k0"]: 0 });
      expect((await noKeyOrLease(b, unwritten.lease)).code).toBe("UNKNOWN_LEASE");
      clock.advance(settings().leaseTtlSec * 1000 + 1);
      await use(b);
      expect(await inFlight()).toEqual({ k0: 0, k1: 0 });
    } finally {
      await b.close();
    }
  });
});

function sum(counts: Record<string, number>): number {
  return Object.values(counts).reduce((n, c) => n + c, 0);
}

/** Reads `read` (a round trip each) until `done` says yes, for at most two seconds (the flush is due within 200 ms). */
async function waitFor<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  const until = performance.now() + 2000;
  for (;;) {
    const value = await read();
    if (done(value) || performance.now() > until) return value;
  }
}

async function noKeyOrLease(store: PostgresStore, lease: string) {
  try {
    await store.release({ lease }, { ok: true });
  } catch (error) {
    return error as { code: string };
  }
  throw new Error("expected the release to fail");
}
