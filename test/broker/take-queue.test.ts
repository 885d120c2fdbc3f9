import { describe, expect, it } from "bun:test";
import { ManualClock } from "../../src/pool/clock";
import type { DomainError } from "../../src/pool/errors";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import { TakeQueue, type Timers } from "../../src/broker/take-queue";
import type { Lease, PoolSettings } from "../../src/store/types";

/** Timers that only fire when the test says so. */
class ManualTimers implements Timers {
  private next = 0;
  private readonly pending = new Map<number, () => void>();
  set(fn: () => void): number {
    this.pending.set(++this.next, fn);
    return this.next;
  }
  clear(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  fireAll(): void {
    const due = [...this.pending.values()];
    this.pending.clear();
    for (const fn of due) fn();
  }
}

function pool(name: string): PoolSettings {
  return { name, rotation: "lru", cooldownSec: 0, leaseTtlSec: 300, recheckIntervalSec: 300, maxConcurrency: 1 };
}

/** Pools of `n` keys each, at most one lease per key, so a key is free only once released. */
async function setup(pools: Record<string, number> = { default: 1 }, chains: Record<string, string[]> = {}) {
  const clock = new ManualClock();
  const timers = new ManualTimers();
  const store = new SqliteStore({ path: ":memory:", clock, random: () => 0 });
  await store.syncPools(
    Object.entries(pools).map(([name, n]) => ({
      settings: pool(name),
      keys: Array.from({ length: n }, (_, i) => ({
        id: `${name}-${i}`,
        token: `sk-test-${name}-${String(i).padStart(16, "0")}`,
        weight: 1,
      })),
    })),
  );
  const queue = new TakeQueue({ store, clock, timers, chainOf: (name) => chains[name] ?? [name] });
  return { clock, timers, store, queue };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error("expected a rejection");
    },
    (error) => error,
  );
}

describe("TakeQueue", () => {
  it("serves concurrent waiters in the order they came as keys are released", async () => {
    const { queue } = await setup({ default: 2 });
    const held = [await queue.take("default"), await queue.take("default")];
    const served: number[] = [];
    const waiters = Array.from({ length: 6 }, (_, i) =>
      queue.take("default", { waitMs: 60_000 }).then((lease) => {
        served.push(i);
        held.push(lease);
      }),
    );
    await queue.whenWaiting("default", 6);
    for (let left = 5; left >= 0; left--) {
      await queue.release({ lease: held.shift()!.lease }, { ok: true });
      await queue.whenWaiting("default", left);
    }
    await Promise.all(waiters);
    expect(served).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it("puts a newcomer behind those already waiting, even one that will not wait", async () => {
    const { store, queue } = await setup();
    const held = await queue.take("default");
    const first = queue.take("default", { waitMs: 60_000 });
    await queue.whenWaiting("default", 1);
    // Released behind the queue's back (as another process would): the key is free, but the waiter was first.
    await store.release({ lease: held.lease }, { ok: true });
    const newcomer = rejection(queue.take("default"));
    expect([(await first).id, ((await newcomer) as DomainError).code]).toEqual(["default-0", "NO_KEY_AVAILABLE"]);
  });

  it("notices a key another process released at the next poll", async () => {
    const { store, queue, timers } = await setup();
    const held = await queue.take("default");
    let served: Lease | undefined;
    const waiter = queue.take("default", { waitMs: 60_000 }).then((lease) => (served = lease));
    await queue.whenWaiting("default", 1);
    // Until the line has tried and gone to sleep on its timer.
    await queue.tick();
    await store.release({ lease: held.lease }, { ok: true });
    expect(served).toBeUndefined();
    timers.fireAll();
    await waiter;
    expect(served?.id).toBe("default-0");
  });

  it("answers NO_KEY_AVAILABLE when the wait is over, saying how long it waited", async () => {
    const { clock, queue } = await setup();
    await queue.take("default");
    const waiter = rejection(queue.take("default", { waitMs: 5000 }));
    await queue.whenWaiting("default", 1);
    clock.advance(4999);
    await queue.tick();
    expect(queue.waiting("default")).toBe(1);
    clock.advance(1);
    await queue.tick();
    const error = (await waiter) as DomainError;
    expect([error.code, error.message]).toEqual([
      "NO_KEY_AVAILABLE",
      expect.stringContaining('no key in pool "default" freed up within the 5s wait'),
    ]);
  });

  it("takes a caller who leaves out of line, and the next one gets the key", async () => {
    const { queue } = await setup();
    const held = await queue.take("default");
    const controller = new AbortController();
    const leaving = rejection(queue.take("default", { waitMs: 60_000, signal: controller.signal }));
    const staying = queue.take("default", { waitMs: 60_000 });
    await queue.whenWaiting("default", 2);
    controller.abort(new DOMException("client went away", "AbortError"));
    expect(((await leaving) as DOMException).name).toBe("AbortError");
    expect(queue.waiting("default")).toBe(1);
    await queue.release({ lease: held.lease }, { ok: true });
    expect((await staying).id).toBe("default-0");
  });

  it("takes from the fallback pools in order when the pool has no key, and waits on all of them", async () => {
    const { queue } = await setup({ primary: 1, backup: 1 }, { primary: ["primary", "backup"] });
    const leases = [await queue.take("primary"), await queue.take("primary")];
    expect(leases.map((l) => [l.pool, l.id])).toEqual([
      ["primary", "primary-0"],
      ["backup", "backup-0"],
    ]);
    const none = (await rejection(queue.take("primary"))) as DomainError;
    expect(none.message).toStartWith('no key in pool "primary" or its fallbacks (backup) is available right now');
    const waiter = queue.take("primary", { waitMs: 60_000 });
    await queue.whenWaiting("primary", 1);
    await queue.release({ lease: leases[1]!.lease }, { ok: true });
    expect((await waiter).pool).toBe("backup");
  });

  it("asks each pool of the chain for the model by its own name, also while a caller waits in line", async () => {
    const { clock, queue, store } = await setup({ primary: 1, backup: 1 }, { primary: ["primary", "backup"] });
    // The backup pool's provider calls the model m-backup; each pair rests a minute.
    const modelIn = (pool: string) => (pool === "backup" ? "m-backup" : "m");
    await store.release({ id: "primary-0", pool: "primary" }, { ok: false, status: 429, model: "m" });
    await store.release({ id: "backup-0", pool: "backup" }, { ok: false, status: 429, model: "m-backup" });
    expect(((await rejection(queue.take("primary", { modelIn }))) as DomainError).code).toBe("NO_KEY_AVAILABLE");
    // Asked for m by its own name, the backup key is free: only m-backup rests on it.
    expect((await queue.take("primary", { modelIn: () => "m" })).id).toBe("backup-0");

    const waiter = queue.take("primary", { modelIn, waitMs: 120_000 });
    await queue.whenWaiting("primary", 1);
    clock.advance(60_000);
    await queue.tick();
    expect((await waiter).id).toBe("primary-0");
  });

  it("turns every waiter away when it stops", async () => {
    const { queue } = await setup();
    await queue.take("default");
    const waiter = rejection(queue.take("default", { waitMs: 60_000 }));
    await queue.whenWaiting("default", 1);
    queue.stop();
    expect(((await waiter) as DomainError).message).toContain("shutting down");
  });
});
