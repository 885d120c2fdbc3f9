import { Database } from "bun:sqlite";
import { describe, expect, it } from "bun:test";
import { type Candidate, chooseKey } from "../../src/pool/choose-key";
import { ManualClock } from "../../src/pool/clock";
import { LOWEST_RANK } from "../../src/pool/rotation";
import { RankOrder } from "../../src/store/rank-order";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import type { PoolSettings } from "../../src/store/types";
import { tempDir } from "../helpers/temp-dir";
import { failure, keys, noKey, seededRandom, settings } from "./contract/_harness";

/**
 * The SQLite store's in-memory hot path (src/store/sqlite/_hot-path.ts): what it decides alone, what it
 * leaves to the file, and that two stores sharing one file (as two processes do) still see each other.
 */

function twoStores(pool: PoolSettings = settings(), n = 3) {
  const dir = tempDir();
  const clock = new ManualClock();
  const open = () => new SqliteStore({ path: dir.file("keypool.db"), clock, random: () => 0 });
  const a = open();
  const b = open();
  return {
    a,
    b,
    clock,
    async sync() {
      await a.syncPools([{ settings: pool, keys: keys(n) }]);
      await b.syncPools([{ settings: pool, keys: keys(n) }]);
    },
    async [Symbol.asyncDispose]() {
      await a.close();
      await b.close();
      dir[Symbol.dispose]();
    },
  };
}

describe("the rotation order in memory", () => {
  it("hands out what chooseKey would, over random pools, starts and re-rankings", () => {
    const random = seededRandom(17);
    const int = (n: number) => Math.floor(random() * n);
    for (let round = 0; round < 200; round++) {
      const n = 1 + int(3000);
      const order = new RankOrder<Candidate>();
      const all: Candidate[] = [];
      for (let i = 0; i < n; i++) {
        const key: Candidate = {
          id: `k${int(5000)}-${i}`,
          rank: int(50),
          takeable: true,
          readyAt: random() < 0.3 ? 100 : 0,
          inFlight: int(3),
          maxConcurrency: random() < 0.2 ? 1 : null,
        };
        all.push(key);
        order.add(key);
      }
      for (let j = 0; j < n / 2; j++) {
        const key = all[int(n)]!;
        expect(order.remove(key)).toBe(true);
        key.rank = int(60);
        order.add(key);
      }
      const start = random() < 0.5 ? LOWEST_RANK : int(60);
      const exclude = all.slice(0, int(3)).map((k) => k.id);
      const wanted = chooseKey(all, { now: 50, start, exclude });
      const ready = (k: Candidate) =>
        k.readyAt <= 50 && (k.maxConcurrency === null || k.inFlight < k.maxConcurrency) && !exclude.includes(k.id);
      expect(order.find(start, ready)?.id).toBe(wanted?.id);
      expect(order.size).toBe(n);
      expect([...order].length).toBe(n);
    }
  });
});

describe("SqliteStore hot path, two stores on one file", () => {
  it("sees another store's operator switch at its next take", async () => {
    await using s = twoStores();
    await s.sync();
    for (let i = 0; i < 3; i++) {
      const lease = await s.a.take("default");
      await s.a.release({ lease: lease.lease }, { ok: true });
    }
    await s.b.updateKey("default", "k0", { enabled: false });
    await s.b.updateKey("default", "k1", { enabled: false });
    for (let i = 0; i < 6; i++) {
      const lease = await s.a.take("default");
      expect(lease.id).toBe("k2");
      await s.a.release({ lease: lease.lease }, { ok: true });
    }
  });

  it("sees another store's rate-limited key resting at its next take", async () => {
    await using s = twoStores(settings(), 2);
    await s.sync();
    await s.a.take("default");
    const held = await s.b.take("default", { exclude: ["k0"] });
    expect(held.id).toBe("k1");
    await s.b.release({ lease: held.lease }, { ok: false, status: 429, retryAfterMs: 60_000 });
    const next = await s.a.take("default");
    expect(next.id).toBe("k0");
  });

  it("writes counters and leases within a flush: the other store counts them and can release the lease", async () => {
    await using s = twoStores();
    await s.sync();
    for (let i = 0; i < 5; i++) {
      const lease = await s.a.take("default");
      await s.a.release({ lease: lease.lease }, { ok: true });
    }
    const open = await s.a.take("default");
    // A read flushes what only memory held; the timer would within FLUSH_EVERY_MS.
    await s.a.status("default");
    const seen = await s.b.status("default");
    expect(seen.reduce((sum, k) => sum + k.requests, 0)).toBe(6);
    expect(seen.find((k) => k.id === open.id)?.inFlight).toBe(1);
    const released = await s.b.release({ lease: open.lease }, { ok: true });
    expect(released.id).toBe(open.id);
    expect(await failure(s.a.release({ lease: open.lease }, { ok: true }))).toMatchObject({ code: "UNKNOWN_LEASE" });
    const usage = await s.b.usage({ pool: "default", window: "all" });
    expect(usage.keys.reduce((sum, k) => sum + k.usage.requests, 0)).toBe(6);
  });

  it("leaves exclusive keys to the file: one lease each, across stores", async () => {
    await using s = twoStores(settings({ maxConcurrency: 1 }), 2);
    await s.sync();
    const first = await s.a.take("default");
    const second = await s.b.take("default");
    expect(new Set([first.id, second.id]).size).toBe(2);
    await noKey(s.a.take("default"));
    await noKey(s.b.take("default"));
    await s.a.release({ lease: first.lease }, { ok: true });
    expect((await s.b.take("default")).id).toBe(first.id);
  });

  it("leaves a rest after each take to the file: the other store waits it out", async () => {
    await using s = twoStores(settings({ cooldownSec: 30 }), 1);
    await s.sync();
    await s.a.take("default");
    await noKey(s.b.take("default"));
    s.clock.advance(30_000);
    expect((await s.b.take("default")).id).toBe("k0");
  });

  it("counts a lease nobody gave back as lapsed, once", async () => {
    await using s = twoStores(settings({ leaseTtlSec: 10 }), 1);
    await s.sync();
    const lapsed = await s.a.take("default");
    await s.a.status("default");
    s.clock.advance(11_000);
    const next = await s.a.take("default");
    await s.b.take("default");
    await s.a.release({ lease: next.lease }, { ok: true });
    await s.a.status("default");
    const [key] = await s.b.status("default");
    expect(key!.inFlight).toBe(1);
    expect(await failure(s.b.release({ lease: lapsed.lease }, { ok: true }))).toMatchObject({ code: "UNKNOWN_LEASE" });
  });
});

describe("SqliteStore hot path, leases of a process that died", () => {
  it("reclaims them once they lapse, though every take is decided in memory", async () => {
    await using s = twoStores(settings({ leaseTtlSec: 10 }), 2);
    await s.sync();
    // b takes and "dies": its lease is in the file, and b never comes back.
    await s.b.take("default");
    await s.b.status("default");
    const before = await s.a.status("default");
    expect(before.reduce((sum, k) => sum + k.inFlight, 0)).toBe(1);
    s.clock.advance(11_000);
    const lease = await s.a.take("default");
    await s.a.release({ lease: lease.lease }, { ok: true });
    await s.a.take("default").then((l) => s.a.release({ lease: l.lease }, { ok: true }));
    const after = await s.a.status("default");
    expect(after.reduce((sum, k) => sum + k.inFlight, 0)).toBe(0);
  });
});

describe("SqliteStore hot path, sticky sessions", () => {
  it("renews a session on its own key in memory, and never overwrites another store's remap", async () => {
    await using s = twoStores(settings({ sessionTtlSec: 60 }), 3);
    await s.sync();
    const first = await s.a.take("default", { session: "s" });
    await s.a.release({ lease: first.lease }, { ok: true });
    for (let i = 0; i < 3; i++) {
      s.clock.advance(50_000);
      const again = await s.a.take("default", { session: "s" });
      expect(again.id).toBe(first.id);
      await s.a.release({ lease: again.lease }, { ok: true, session: "s", usage: { input: 10, output: 1 } });
    }
    // The renewals reached the file: 150 s after the mapping was made, b still sees it live.
    expect((await s.a.sessionUsage({ pool: "default", limit: 5 }))[0]).toMatchObject({ requests: 3, inputTokens: 30 });
    const seen = await s.b.take("default", { session: "s" });
    expect(seen.id).toBe(first.id);
    await s.b.release({ lease: seen.lease }, { ok: true });
    // b takes the key out; its next take for the session moves the mapping for good.
    await s.b.updateKey("default", first.id, { enabled: false });
    const moved = await s.b.take("default", { session: "s" });
    expect(moved.id).not.toBe(first.id);
    await s.b.release({ lease: moved.lease }, { ok: true });
    const followed = await s.a.take("default", { session: "s" });
    expect(followed.id).toBe(moved.id);
  });
});

describe("SqliteStore hot path, flushes off the request thread", () => {
  it("writes a timed flush on the worker: takes go on while another process holds the file's write lock", async () => {
    using dir = tempDir();
    const path = dir.file("keypool.db");
    const store = new SqliteStore({ path, clock: new ManualClock(), random: () => 0, busyTimeoutMs: 30_000 });
    try {
      await store.syncPools([{ settings: settings(), keys: keys(3) }]);
      for (let i = 0; i < 5; i++) {
        const lease = await store.take("default");
        await store.release({ lease: lease.lease }, { ok: true });
      }
      const other = new Database(path);
      other.exec("BEGIN IMMEDIATE");
      // On the store's own thread this flush would wait for the lock, and every request with it.
      const flushed = store.flushInBackground();
      for (let i = 0; i < 4; i++) {
        const lease = await store.take("default");
        await store.release({ lease: lease.lease }, { ok: true });
      }
      const requestsInFile = () => (other.query("SELECT SUM(requests) AS n FROM keys").get() as { n: number }).n;
      expect(requestsInFile()).toBe(0);
      other.exec("COMMIT");
      await flushed;
      expect(requestsInFile()).toBe(5);
      other.close();
      // A read settles the worker's writes and flushes the rest itself.
      const seen = await store.status("default");
      expect(seen.reduce((sum, k) => sum + k.requests, 0)).toBe(9);
    } finally {
      await store.close();
    }
  });

  it("reads back another store's change logged right after its own flush's entries", async () => {
    await using s = twoStores();
    await s.sync();
    for (let i = 0; i < 3; i++) {
      const lease = await s.a.take("default");
      await s.a.release({ lease: lease.lease }, { ok: true });
    }
    // Three first successes: the worker logs them as a's own, which a leaves out when it reads the log.
    await s.a.flushInBackground();
    await s.b.updateKey("default", "k1", { enabled: false });
    for (let i = 0; i < 6; i++) {
      const lease = await s.a.take("default");
      expect(lease.id).not.toBe("k1");
      await s.a.release({ lease: lease.lease }, { ok: true });
    }
    expect((await s.b.events({ pool: "default", limit: 10 })).filter((e) => e.to === "live")).toHaveLength(3);
  });

  it("lets a transaction that needs the file whole wait for the worker's flush: a lease it wrote is found", async () => {
    using dir = tempDir();
    const store = new SqliteStore({ path: dir.file("keypool.db"), clock: new ManualClock(), random: () => 0 });
    try {
      await store.syncPools([{ settings: settings(), keys: keys(2) }]);
      const open = await store.take("default");
      const flushed = store.flushInBackground();
      // A failure is decided in the file, where the flush on the worker is writing this lease right now.
      const released = await store.release({ lease: open.lease }, { ok: false, status: 500 });
      expect(released.id).toBe(open.id);
      await flushed;
      const [key] = (await store.status("default")).filter((k) => k.id === open.id);
      expect(key).toMatchObject({ inFlight: 0, requests: 1, errors: 1 });
    } finally {
      await store.close();
    }
  });
});
