import { describe, expect, it } from "bun:test";
import { ManualClock } from "../../src/pool/clock";
import { WaitQueue, wakeDelayMs } from "../../src/pool/wait-queue";

describe("WaitQueue", () => {
  it("serves waiters first come, first served, whatever their deadlines", () => {
    const clock = new ManualClock();
    const queue = new WaitQueue<string>();
    for (const [name, waitMs] of [
      ["a", 5000],
      ["b", 1000],
      ["c", 9000],
    ] as const)
      queue.enqueue(name, clock.now() + waitMs);
    const served: string[] = [];
    while (queue.head) {
      served.push(queue.head.value);
      queue.remove(queue.head);
    }
    expect(served).toEqual(["a", "b", "c"]);
  });

  it("expires waiters whose deadline has come, in line order, and keeps the rest in theirs", () => {
    const clock = new ManualClock();
    const queue = new WaitQueue<string>();
    queue.enqueue("long", clock.now() + 10_000);
    queue.enqueue("short", clock.now() + 1000);
    queue.enqueue("now", clock.now());
    queue.enqueue("later", clock.now() + 20_000);
    expect(queue.expire(clock.now()).map((w) => w.value)).toEqual(["now"]);
    clock.advance(10_000);
    expect(queue.expire(clock.now()).map((w) => w.value)).toEqual(["long", "short"]);
    expect([queue.size, queue.head?.value, queue.nextDeadline()]).toEqual([1, "later", clock.now() + 10_000]);
  });

  it("takes a waiter out of line once, and says when it was already gone", () => {
    const queue = new WaitQueue<string>();
    const a = queue.enqueue("a", 1);
    queue.enqueue("b", 2);
    expect([queue.remove(a), queue.remove(a), queue.head?.value]).toEqual([true, false, "b"]);
  });
});

describe("wakeDelayMs", () => {
  it("wakes at the soonest of the retry hint, the next deadline and the poll interval", () => {
    expect(wakeDelayMs(1000, 80, 5000, 250)).toBe(80);
    expect(wakeDelayMs(1000, 60_000, 1100, 250)).toBe(100);
    expect(wakeDelayMs(1000, 60_000, undefined, 250)).toBe(250);
    // A deadline already past wakes at once (never a zero or negative timer).
    expect(wakeDelayMs(1000, undefined, 900, 250)).toBe(1);
  });
});
