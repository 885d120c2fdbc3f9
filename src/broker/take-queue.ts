import type { Clock } from "../pool/clock";
import { DomainError } from "../pool/errors";
import type { Outcome } from "../pool/key-state";
import { WaitQueue, type Waiter, wakeDelayMs } from "../pool/wait-queue";
import type { Lease, PoolStore, ReleaseResult, ReleaseTarget } from "../store/types";

/** How often a waiting line looks at the store at least: another process's release makes no sound here. */
export const DEFAULT_POLL_MS = 250;

/** A lease taken for a caller who left before it arrived goes back as a client-side miss: no penalty. */
const GIVEN_BACK: Outcome = { ok: false, class: "client" };

export interface QueuedTake {
  /** A sticky session, passed to each pool's take. */
  session?: string;
  /** Key ids not to hand out, by pool: a retry must land on another key. */
  exclude?: Readonly<Record<string, readonly string[]>>;
  /** When no key is free, wait up to this long (first come, first served); unset or 0 answers at once. */
  waitMs?: number;
  /** Aborting it (the client went away) takes the caller out of line. */
  signal?: AbortSignal;
  /** The pools to try, in order; default: the pool and its fallbacks (`chainOf`). */
  pools?: readonly string[];
  /**
   * The model the request is for in each pool it may be served by (a fallback's `model_map` may name it
   * differently); undefined: the request names none there.
   */
  modelIn?: (pool: string) => string | undefined;
}

export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const realTimers: Timers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export interface TakeQueueDeps {
  store: Pick<PoolStore, "take" | "release">;
  clock: Clock;
  /** A pool followed by the pools that serve its requests when it has no usable key (see fallbackChain). */
  chainOf?: (pool: string) => readonly string[];
  timers?: Timers;
  pollMs?: number;
  /**
   * Told of a take that ends without a key (after its wait and its fallbacks), before the error goes on to
   * the caller. A take that excludes keys (a gateway retry) is not told: its request already had a key,
   * and the next request's first take will tell whether the pool is dry.
   */
  onExhausted?: (pool: string, error: DomainError) => void;
}

interface Pending {
  pools: readonly string[];
  request: QueuedTake;
  resolve(lease: Lease): void;
  reject(error: unknown): void;
}

/** The callers waiting on one pool, and the state of the loop that serves them. */
interface Line {
  queue: WaitQueue<Pending>;
  /** The loop serving the line, while it runs. */
  running?: Promise<void>;
  again: boolean;
  timer?: unknown;
  /** Why the head could not be served last time: the store's answer, with its retry hint. */
  lastMiss?: DomainError;
}

/**
 * Takes a key from a pool or its fallbacks, waiting for one in line when none is free. One per
 * process, shared by the broker and the gateway: a release through it wakes the line at once; keys
 * freeing by time, or released by another process, are noticed by a timer at the store's
 * retry hint, never more than `pollMs` apart. A caller never overtakes an earlier one of the same
 * pool in this process: while anyone waits, newcomers join the back of the line.
 */
export class TakeQueue {
  private readonly store: TakeQueueDeps["store"];
  private readonly clock: Clock;
  private readonly chainOf: (pool: string) => readonly string[];
  private readonly timers: Timers;
  private readonly pollMs: number;
  private readonly onExhausted: TakeQueueDeps["onExhausted"];
  private readonly lines = new Map<string, Line>();
  private readonly watchers: Array<{ pool: string; n: number; resolve: () => void }> = [];
  private stopped = false;

  constructor(deps: TakeQueueDeps) {
    this.store = deps.store;
    this.clock = deps.clock;
    this.chainOf = deps.chainOf ?? ((pool) => [pool]);
    this.timers = deps.timers ?? realTimers;
    this.pollMs = deps.pollMs ?? DEFAULT_POLL_MS;
    this.onExhausted = deps.onExhausted;
  }

  /** A lease from the first pool in the chain that has a key free; throws NO_KEY_AVAILABLE (or the abort reason). */
  async take(pool: string, request: QueuedTake = {}): Promise<Lease> {
    const pools = request.pools ?? this.chainOf(pool);
    if (!this.lines.get(pool)?.queue.size) {
      const got = await this.tryPools(pools, request);
      if (!(got instanceof DomainError)) return got;
      // A spent budget comes back at the window's reset, hours away: nobody waits in line for it.
      if (!request.waitMs || request.waitMs <= 0 || this.stopped || got.code === "BUDGET_EXHAUSTED")
        throw this.reported(pool, request, got);
    }
    return this.wait(pool, pools, request).catch((error: unknown) => {
      throw this.reported(pool, request, error);
    });
  }

  /** Tells `onExhausted` of a take that ended without a key, unless it was a retry; returns the error to throw. */
  private reported(pool: string, request: QueuedTake, error: unknown): unknown {
    const retry = Object.values(request.exclude ?? {}).some((ids) => ids.length > 0);
    if (this.onExhausted && error instanceof DomainError && error.code === "NO_KEY_AVAILABLE" && !retry)
      this.onExhausted(pool, error);
    return error;
  }

  /** Reports how a lease went, then lets whoever waits try for the key. */
  async release(target: ReleaseTarget, outcome: Outcome): Promise<ReleaseResult> {
    const result = await this.store.release(target, outcome);
    this.wake();
    return result;
  }

  /** A key may have freed up (e.g. released past this queue): every line tries again. */
  wake(): void {
    for (const [pool, line] of this.lines) if (line.queue.size > 0) void this.pump(pool);
  }

  /** Serves and expires every line now; tests drive it after moving a manual clock. */
  async tick(): Promise<void> {
    await Promise.all([...this.lines.keys()].map((pool) => this.pump(pool)));
  }

  /** Callers waiting on `pool` in this process. */
  waiting(pool: string): number {
    return this.lines.get(pool)?.queue.size ?? 0;
  }

  /** Resolves once exactly `n` callers wait on `pool`: tests wait for this signal instead of sleeping. */
  whenWaiting(pool: string, n: number): Promise<void> {
    if (this.waiting(pool) === n) return Promise.resolve();
    return new Promise((resolve) => this.watchers.push({ pool, n, resolve }));
  }

  /** Turns every waiter away (503) and stops the timers; later takes no longer wait. */
  stop(): void {
    this.stopped = true;
    for (const [pool, line] of this.lines) {
      if (line.timer !== undefined) this.timers.clear(line.timer);
      for (const waiter of line.queue.expire(Number.POSITIVE_INFINITY)) {
        waiter.value.reject(
          new DomainError("NO_KEY_AVAILABLE", "keypool is shutting down; retry against another instance", 1000),
        );
      }
      this.changed(pool);
    }
    this.lines.clear();
  }

  private wait(pool: string, pools: readonly string[], request: QueuedTake): Promise<Lease> {
    const { signal } = request;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<Lease>((resolve, reject) => {
      const line = this.lineOf(pool);
      const onAbort = () => {
        if (!line.queue.remove(waiter)) return;
        reject(signal!.reason);
        this.changed(pool);
        // The one who left may have been holding up the line.
        void this.pump(pool);
      };
      const settle =
        <T>(fn: (value: T) => void) =>
        (value: T) => {
          signal?.removeEventListener("abort", onAbort);
          fn(value);
        };
      const deadline = this.clock.now() + Math.max(0, request.waitMs ?? 0);
      const waiter: Waiter<Pending> = line.queue.enqueue(
        { pools, request, resolve: settle(resolve), reject: settle(reject) },
        deadline,
      );
      signal?.addEventListener("abort", onAbort, { once: true });
      this.changed(pool);
      void this.pump(pool);
    });
  }

  /**
   * Serves the line from its head until someone cannot be served, then turns away whoever's time is
   * up. One loop per line at a time: a call while it runs asks it to go round once more, and
   * resolves when it ends.
   */
  private pump(pool: string): Promise<void> {
    const line = this.lines.get(pool);
    if (!line) return Promise.resolve();
    if (line.running) {
      line.again = true;
      return line.running;
    }
    const run = async () => {
      do {
        line.again = false;
        await this.serve(pool, line);
        this.expire(pool, line);
      } while (line.again && line.queue.size > 0);
    };
    line.running = run().finally(() => {
      line.running = undefined;
      this.schedule(pool, line);
    });
    return line.running;
  }

  private async serve(pool: string, line: Line): Promise<void> {
    for (let head = line.queue.head; head; head = line.queue.head) {
      let got: Lease | DomainError;
      try {
        got = await this.tryPools(head.value.pools, head.value.request);
      } catch (error) {
        if (line.queue.remove(head)) head.value.reject(error);
        this.changed(pool);
        continue;
      }
      if (got instanceof DomainError) {
        line.lastMiss = got;
        return;
      }
      if (line.queue.remove(head)) {
        head.value.resolve(got);
        this.changed(pool);
      } else {
        // The caller left while its take was in flight: the key goes straight back for the next in line.
        await this.store.release({ lease: got.lease }, GIVEN_BACK).catch(() => {});
      }
    }
  }

  private expire(pool: string, line: Line): void {
    const expired = line.queue.expire(this.clock.now());
    for (const waiter of expired) waiter.value.reject(this.timedOut(pool, waiter, line.lastMiss));
    if (expired.length > 0) this.changed(pool);
  }

  private timedOut(pool: string, waiter: Waiter<Pending>, miss: DomainError | undefined): DomainError {
    const waitMs = waiter.value.request.waitMs ?? 0;
    const retryAfterMs = miss?.retryAfterMs ?? this.pollMs;
    if (waitMs <= 0)
      return (
        miss ?? new DomainError("NO_KEY_AVAILABLE", `no key in pool "${pool}" is available right now`, retryAfterMs)
      );
    return new DomainError(
      "NO_KEY_AVAILABLE",
      `no key in pool "${pool}"${fallbackNote(waiter.value.pools)} freed up within the ${formatSec(waitMs)} wait; retry in ${formatSec(retryAfterMs)}`,
      retryAfterMs,
    );
  }

  /** Sleeps the line until a key may be free or a deadline comes, bounded by the poll interval; an empty line is dropped. */
  private schedule(pool: string, line: Line): void {
    if (line.timer !== undefined) this.timers.clear(line.timer);
    line.timer = undefined;
    if (line.queue.size === 0) {
      if (this.lines.get(pool) === line && !line.running) this.lines.delete(pool);
      return;
    }
    const delay = wakeDelayMs(this.clock.now(), line.lastMiss?.retryAfterMs, line.queue.nextDeadline(), this.pollMs);
    line.timer = this.timers.set(() => {
      line.timer = undefined;
      void this.pump(pool);
    }, delay);
  }

  /**
   * The first lease any pool in the chain gives, or the store's "no key" with the soonest retry hint.
   * A pool that has spent its budget is passed over like one without a free key: its fallbacks take over.
   */
  private async tryPools(pools: readonly string[], request: QueuedTake): Promise<Lease | DomainError> {
    let soonestMs: number | undefined;
    let first: DomainError | undefined;
    let allSpent = true;
    for (const pool of pools) {
      try {
        return await this.store.take(pool, {
          session: request.session,
          exclude: request.exclude?.[pool],
          model: request.modelIn?.(pool),
        });
      } catch (error) {
        if (!(error instanceof DomainError) || !PASS_OVER.has(error.code)) throw error;
        first ??= error;
        allSpent &&= error.code === "BUDGET_EXHAUSTED";
        if (error.retryAfterMs !== undefined)
          soonestMs = Math.min(soonestMs ?? Number.POSITIVE_INFINITY, error.retryAfterMs);
      }
    }
    if (pools.length <= 1 || !first) return first ?? new DomainError("NO_KEY_AVAILABLE", "no pool to take from");
    const retry = soonestMs ?? 1000;
    if (allSpent)
      return new DomainError(
        "BUDGET_EXHAUSTED",
        `pool "${pools[0]}"${fallbackNote(pools)} have all spent their budgets; retry in ${formatSec(retry)}`,
        retry,
      );
    return new DomainError(
      "NO_KEY_AVAILABLE",
      `no key in pool "${pools[0]}"${fallbackNote(pools)} is available right now; retry in ${formatSec(retry)}`,
      retry,
    );
  }

  private lineOf(pool: string): Line {
    let line = this.lines.get(pool);
    if (!line) {
      line = { queue: new WaitQueue<Pending>(), again: false };
      this.lines.set(pool, line);
    }
    return line;
  }

  private changed(pool: string): void {
    const size = this.waiting(pool);
    for (const watcher of this.watchers.filter((w) => w.pool === pool && w.n === size)) {
      this.watchers.splice(this.watchers.indexOf(watcher), 1);
      watcher.resolve();
    }
  }
}

/** What a take passes over to try the next pool in the chain. */
const PASS_OVER: ReadonlySet<string> = new Set(["NO_KEY_AVAILABLE", "BUDGET_EXHAUSTED"]);

function fallbackNote(pools: readonly string[]): string {
  return pools.length > 1 ? ` or its fallbacks (${pools.slice(1).join(", ")})` : "";
}

function formatSec(ms: number): string {
  return `${Math.max(1, Math.ceil(ms / 1000))}s`;
}
