/**
 * Callers waiting for a key, first come first served. Pure: the caller says what time it is.
 * The service that drives it (src/broker/take-queue.ts) tries the head waiter whenever a key may
 * have freed up, and stops at the first one it cannot serve, so no later waiter overtakes it.
 */

export interface Waiter<T> {
  readonly value: T;
  /** Epoch ms after which the waiter gives up; a waiter that may not wait has its arrival time. */
  readonly deadline: number;
}

export class WaitQueue<T> {
  private readonly waiters: Array<Waiter<T>> = [];

  get size(): number {
    return this.waiters.length;
  }

  /** The waiter served next. */
  get head(): Waiter<T> | undefined {
    return this.waiters[0];
  }

  enqueue(value: T, deadline: number): Waiter<T> {
    const waiter = { value, deadline };
    this.waiters.push(waiter);
    return waiter;
  }

  /** Takes a waiter out of line (served, gone, given up); false when it was no longer in it. */
  remove(waiter: Waiter<T>): boolean {
    const at = this.waiters.indexOf(waiter);
    if (at === -1) return false;
    this.waiters.splice(at, 1);
    return true;
  }

  /** Removes and returns, in line order, every waiter whose deadline has come. */
  expire(now: number): Array<Waiter<T>> {
    const expired = this.waiters.filter((w) => w.deadline <= now);
    for (const waiter of expired) this.remove(waiter);
    return expired;
  }

  /** The soonest deadline in line, if anyone is waiting. */
  nextDeadline(): number | undefined {
    let soonest: number | undefined;
    for (const w of this.waiters) if (soonest === undefined || w.deadline < soonest) soonest = w.deadline;
    return soonest;
  }
}

/**
 * How long to sleep before trying the head waiter again: until a key is due to free up by time
 * (`retryAfterMs`, from the store) or a waiter's deadline, but never longer than `pollMs`, because
 * another process may release a key at any moment and nothing here would hear of it.
 */
export function wakeDelayMs(
  now: number,
  retryAfterMs: number | undefined,
  nextDeadline: number | undefined,
  pollMs: number,
): number {
  const candidates = [pollMs];
  if (retryAfterMs !== undefined) candidates.push(retryAfterMs);
  if (nextDeadline !== undefined) candidates.push(nextDeadline - now);
  return Math.max(1, Math.min(...candidates));
}
