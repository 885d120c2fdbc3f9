import type { SQL } from "bun";
import { describe, expect, it } from "bun:test";
import { ManualClock } from "../../src/pool/clock";
import { ROTATIONS } from "../../src/pool/vocabulary";
import { PostgresStore } from "../../src/store/postgres/postgres-store";
import { POSTGRES_URL, announceSkip, freshSchema } from "../helpers/postgres";
import { keys, seededRandom, settings } from "./contract/_harness";

announceSkip("test/store/postgres-round-trips.test.ts");

/**
 * Counts what the store sends: each statement is one round trip, and a transaction two more (BEGIN
 * and COMMIT), whatever runs inside it.
 */
function counting(sql: SQL, counter: { trips: number }): SQL {
  return new Proxy(sql, {
    apply(target, self, args) {
      counter.trips++;
      return Reflect.apply(target as unknown as (...a: unknown[]) => unknown, self, args);
    },
    get(target, property) {
      const value: unknown = Reflect.get(target, property);
      if (typeof value !== "function") return value;
      if (property === "unsafe")
        return (...args: unknown[]) => {
          counter.trips++;
          return value.apply(target, args);
        };
      if (property === "begin")
        return (fn: (tx: SQL) => unknown) => {
          counter.trips += 2;
          return value.call(target, (tx: SQL) => fn(counting(tx, counter)));
        };
      return value.bind(target);
    },
  });
}

describe.skipIf(!POSTGRES_URL)("PostgresStore round trips", () => {
  for (const rotation of ROTATIONS) {
    it(`takes and releases a key in at most two round trips (${rotation})`, async () => {
      await using schema = await freshSchema();
      const counter = { trips: 0 };
      const clock = new ManualClock();
      const store = await PostgresStore.open({
        url: schema.url,
        clock,
        random: seededRandom(7),
        maxConnections: 2,
        wrapClient: (sql) => counting(sql, counter),
      });
      try {
        await store.syncPools([{ settings: settings({ rotation }), keys: keys(4) }]);
        // The first take of a second reclaims expired leases, and the first release of an hour folds old
        // usage: both once in a while. The keys start live (a first success adds a statement to a flush).
        const first = await store.take("default");
        await store.release({ lease: first.lease }, { ok: true });
        for (let i = 1; i < 4; i++) await store.release({ id: `k${i}` }, { ok: true });
        const trips: number[] = [];
        for (let i = 0; i < 8; i++) {
          counter.trips = 0;
          const lease = await store.take("default");
          await store.release({ lease: lease.lease }, { ok: true, usage: { input: 10, output: 5 } });
          trips.push(counter.trips);
        }
        // The take's look at the key log; the release is decided in memory. A flush (every 200 ms,
        // of everything since the last) may fall inside a pair: at most one more.
        expect(trips.every((n) => n <= 2)).toBe(true);
        expect(trips.filter((n) => n === 1).length).toBeGreaterThanOrEqual(6);
        const [status] = (await store.status("default")).filter((k) => k.id === first.id);
        expect(status?.inFlight).toBe(0);
      } finally {
        await store.close();
      }
    });
  }

  it("answers 32 takes that arrive at once with one look at the key log, and their releases with none", async () => {
    await using schema = await freshSchema();
    const { store, counter } = await countingStore(schema.url);
    try {
      await store.syncPools([{ settings: settings(), keys: keys(40) }]);
      for (let i = 0; i < 40; i++) await store.release({ id: `k${i}` }, { ok: true });
      await store.release({ lease: (await store.take("default")).lease }, { ok: true });
      // status writes what memory held: no flush is due while the takes below run.
      await store.status("default");
      counter.trips = 0;
      const leases = await Promise.all(Array.from({ length: 32 }, () => store.take("default")));
      expect(counter.trips).toBe(1);
      expect(new Set(leases.map((l) => l.id)).size).toBe(32);
      counter.trips = 0;
      for (const lease of leases) await store.release({ lease: lease.lease }, { ok: true });
      expect(counter.trips).toBe(0);
    } finally {
      await store.close();
    }
  });

  it("takes for a model and releases naming it in two round trips, pairs resting or not", async () => {
    await using schema = await freshSchema();
    const { store, counter } = await countingStore(schema.url);
    try {
      await store.syncPools([{ settings: settings(), keys: keys(4) }]);
      await store.release({ id: "k0" }, { ok: false, status: 429, model: "m-big" });
      const first = await store.take("default", { model: "m-big" });
      await store.release({ lease: first.lease }, { ok: true });
      const trips: number[] = [];
      const taken: string[] = [];
      for (let i = 0; i < 8; i++) {
        counter.trips = 0;
        const lease = await store.take("default", { model: "m-big" });
        taken.push(lease.id);
        // Every other release names no model: the lease's applies; a 429 rests the pair in the same statement.
        const outcome = i % 4 === 3 ? { ok: false, status: 429 } : { ok: true, usage: { input: 10, output: 5 } };
        await store.release({ lease: lease.lease }, i % 2 === 0 ? { ...outcome, model: "m-big" } : outcome);
        trips.push(counter.trips);
      }
      expect(trips).toEqual(trips.map(() => 2));
      expect(taken).not.toContain("k0");
      expect((await store.status("default")).filter((k) => k.models["m-big"]).length).toBe(3);
    } finally {
      await store.close();
    }
  });

  it("counts model_limits rpm on the pair in the take's transaction", async () => {
    await using schema = await freshSchema();
    const { store, counter } = await countingStore(schema.url);
    try {
      await store.syncPools([{ settings: settings({ modelLimits: { "m-big": { rpm: 1000 } } }), keys: keys(2) }]);
      const first = await store.take("default", { model: "m-big" });
      await store.release({ lease: first.lease }, { ok: true });
      const trips: number[] = [];
      for (let i = 0; i < 4; i++) {
        counter.trips = 0;
        const lease = await store.take("default", { model: "m-big" });
        await store.release({ lease: lease.lease }, { ok: true, model: "m-big" });
        trips.push(counter.trips);
      }
      // BEGIN, the take (which read the pair), the pair's write, COMMIT; then the release's one statement.
      expect(trips).toEqual(trips.map(() => 5));
    } finally {
      await store.close();
    }
  });

  it("keeps two round trips with prices but no cap; a capped pool's take costs one more", async () => {
    await using schema = await freshSchema();
    const { store, counter } = await countingStore(schema.url);
    const prices = { m: { inputPerMtok: 1, outputPerMtok: 1 } };
    const costing = { ok: true, model: "m", usage: { input: 10, output: 5 } };
    // The trips of each take and of each release, apart; the take names the model the release is priced at.
    const measure = async () => {
      const first = await store.take("default", { model: "m" });
      await store.release({ lease: first.lease }, costing);
      const trips: Array<[number, number]> = [];
      for (let i = 0; i < 4; i++) {
        counter.trips = 0;
        const lease = await store.take("default", { model: "m" });
        const took = counter.trips;
        await store.release({ lease: lease.lease }, costing);
        trips.push([took, counter.trips - took]);
      }
      return trips;
    };
    try {
      await store.syncPools([{ settings: settings({ prices }), keys: keys(4) }]);
      expect(await measure()).toEqual(Array(4).fill([1, 1]));
      await store.syncPools([{ settings: settings({ prices, budget: { dayMicros: 1e9 } }), keys: keys(4) }]);
      // The take reads the pool's total first. The release is a transaction: BEGIN; the lease given back
      // with its key locked; the key's pair and spend read; the key's row, the ledger and the key's spend
      // written; the pool's total locked, then written; COMMIT (7 waits, as statements run side by side).
      expect(await measure()).toEqual(Array(4).fill([2, 10]));
      expect(await store.poolSpend("default")).toMatchObject({ day: { spentMicros: 150 } });
    } finally {
      await store.close();
    }
  });

  it("plans a release again when another release changed the key meanwhile, and loses neither", async () => {
    await using schema = await freshSchema();
    const clock = new ManualClock();
    const store = await PostgresStore.open({ url: schema.url, clock, maxConnections: 2 });
    try {
      await store.syncPools([{ settings: settings({ maxConcurrency: 2 }), keys: keys(1) }]);
      const a = await store.take("default");
      const b = await store.take("default");
      // a's release was planned from the row its take left, which b's take has changed since.
      await store.release({ lease: a.lease }, { ok: false, status: 500 });
      await store.release({ lease: b.lease }, { ok: true });
      const [key] = await store.status("default");
      expect({ inFlight: key?.inFlight, errors: key?.errors, requests: key?.requests }).toEqual({
        inFlight: 0,
        errors: 1,
        requests: 2,
      });
    } finally {
      await store.close();
    }
  });
});

/** A store on `url` whose every round trip is counted in `counter.trips`. */
async function countingStore(url: string) {
  const counter = { trips: 0 };
  const clock = new ManualClock();
  const store = await PostgresStore.open({
    url,
    clock,
    maxConnections: 2,
    wrapClient: (sql) => counting(sql, counter),
  });
  return { store, counter };
}
