import { SQL } from "bun";
import { AsyncLocalStorage } from "node:async_hooks";
import { DomainError } from "../../pool/errors";

export const DEFAULT_TIMEOUT_SEC = 5;
export const DEFAULT_MAX_CONNECTIONS = 10;

export interface ConnectionOptions {
  url: string;
  /** A connection attempt, a statement or a lock wait that takes longer fails (STORE_UNAVAILABLE). */
  timeoutSec?: number;
  maxConnections?: number;
  /** Told when connections that stopped answering are given up and a new set is opened (see `openClient`): worth a log line. */
  onReplaced?: () => void;
}

/**
 * The client pool. Session settings make the server end a stuck statement itself, not only our timer.
 * What it returns stands for the pool: when a call through it hangs past its deadline (see
 * `withDeadline`), later calls go to a new pool and the hung one is closed.
 */
export function openClient(options: ConnectionOptions): SQL {
  return replaceablePool(() => newPool(options), options.timeoutSec ?? DEFAULT_TIMEOUT_SEC, options.onReplaced);
}

function newPool(options: ConnectionOptions): SQL {
  const timeoutSec = options.timeoutSec ?? DEFAULT_TIMEOUT_SEC;
  const ms = String(Math.max(1, Math.round(timeoutSec * 1000)));
  return new SQL(options.url, {
    max: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
    connectionTimeout: Math.max(1, Math.ceil(timeoutSec)),
    // A connection that outlives a server restart is dropped and replaced on the next query.
    idleTimeout: 60,
    connection: {
      application_name: "keypool",
      statement_timeout: ms,
      lock_timeout: ms,
      // A process that dies inside a transaction must not hold key rows locked for long.
      idle_in_transaction_session_timeout: String(Math.max(10_000, Number(ms) * 2)),
    },
  });
}

/** A pool behind a stand-in; `retire(pool)` swaps in a new one, unless that happened already. */
interface Replaceable {
  retire(pool: SQL): void;
}

/** The pools each `withDeadline` call used, recorded by the stand-ins it called. */
const callsInScope = new AsyncLocalStorage<Map<Replaceable, SQL>>();

/**
 * Why a pool is replaced rather than mended: Bun's client has no read timeout, so a connection to a
 * server that stopped answering without closing it (a frozen host, a NAT that forgot the flow, a hung
 * disk) waits forever and keeps its slot; Bun also pipelines later queries onto busy connections, so
 * they wait behind it. A query run on the pool cannot tell which connection it is on, so there is no
 * closing just that one. A new pool takes the calls from then on; the old one gets `timeoutSec` to
 * finish what runs on it, then whatever still waits fails with ERR_POSTGRES_CONNECTION_CLOSED.
 */
function replaceablePool(open: () => SQL, timeoutSec: number, onReplaced?: () => void): SQL {
  let current = open();
  const retired = new Set<SQL>();
  const handle: Replaceable = {
    retire(pool) {
      if (pool !== current) return;
      current = open();
      retired.add(pool);
      onReplaced?.();
      void pool
        .close({ timeout: Math.ceil(timeoutSec) })
        .catch(() => {})
        .finally(() => retired.delete(pool));
    },
  };
  const use = () => {
    callsInScope.getStore()?.set(handle, current);
    return current;
  };
  // Closing closes the pools still finishing too: a second close of a pool keeps the shorter timeout.
  const close = async (options?: { timeout?: number }) => {
    await Promise.all([current, ...retired].map((pool) => pool.close(options)));
  };
  const closers = new Map<PropertyKey, unknown>([
    ["close", close],
    ["end", close],
    [Symbol.asyncDispose, () => close()],
  ]);
  // A function target, so the stand-in can be called as a tag like the pool itself.
  return new Proxy(function pool() {}, {
    apply: (_, __, args: unknown[]) => (use() as unknown as (...a: unknown[]) => unknown)(...args),
    get(_, property) {
      if (closers.has(property)) return closers.get(property);
      const pool = use();
      const value: unknown = Reflect.get(pool, property);
      return typeof value === "function" ? value.bind(pool) : value;
    },
    getPrototypeOf: () => Object.getPrototypeOf(current),
  }) as unknown as SQL;
}

// SQLSTATE classes and codes that mean "the database is not there right now", not "the request is wrong".
const UNAVAILABLE_STATES = /^(08|57P0|53)/;
const TIMEOUT_STATES = new Set(["57014", "55P03"]);

/** Whether an error from the client means the database could not be reached or did not answer in time. */
export function isUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const { code, errno } = error as { code?: string; errno?: string | number };
  if (typeof code === "string" && /^ERR_POSTGRES_(CONNECTION_|IDLE_TIMEOUT|LIFETIME_TIMEOUT|TLS_)/.test(code))
    return true;
  if (
    typeof code === "string" &&
    /^(ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|ENOTFOUND|EPIPE)$/.test(code)
  )
    return true;
  if (typeof errno === "string" && (UNAVAILABLE_STATES.test(errno) || TIMEOUT_STATES.has(errno))) return true;
  return false;
}

/** A transaction that lost a race the server detected; running it again is correct. */
export function isRetryable(error: unknown): boolean {
  const errno = (error as { errno?: unknown } | null)?.errno;
  return errno === "40P01" || errno === "40001";
}

export function unavailableError(cause: unknown, timeoutSec: number): DomainError {
  // The client's own message may name the host; the code is enough to tell what happened.
  const code = (cause as { code?: string; errno?: string } | null)?.errno ?? (cause as { code?: string } | null)?.code;
  const what =
    cause === "timeout" ? `did not answer within ${timeoutSec}s` : `is unreachable${code ? ` (${code})` : ""}`;
  return new DomainError(
    "STORE_UNAVAILABLE",
    `the PostgreSQL store ${what}; keypool retries by itself — try again shortly`,
    1000,
  );
}

// A server that answers at all answers about when the deadline passes: statement_timeout and
// lock_timeout end a slow statement then. A call still unanswered this long after its deadline is
// taken to be on a hung connection. A statement that waited long behind others before it started can
// be mistaken for one; that costs a new pool's connections, as the old pool finishes its work first.
const HUNG_AFTER_MS = 1000;

/**
 * Runs `op` with a deadline: past `timeoutSec`, or on a connection error, the caller gets
 * STORE_UNAVAILABLE rather than waiting. The statement may still finish on the server; every write
 * is one transaction, so it either happened whole or not at all. When it has not finished shortly
 * after the deadline either, the pools it used are replaced: see `openClient`.
 */
export async function withDeadline<T>(op: () => Promise<T>, timeoutSec: number): Promise<T> {
  const used = new Map<Replaceable, SQL>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      reject(unavailableError("timeout", timeoutSec));
    }, timeoutSec * 1000);
  });
  const running = callsInScope.run(used, async () => op());
  try {
    return await Promise.race([running, deadline]);
  } catch (error) {
    if (timedOut) retireIfHung(running, used);
    if (isUnavailable(error)) throw unavailableError(error, timeoutSec);
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

function retireIfHung(running: Promise<unknown>, used: Map<Replaceable, SQL>): void {
  let settled = false;
  const done = () => {
    settled = true;
  };
  running.then(done, done);
  const timer = setTimeout(() => {
    if (!settled) for (const [handle, pool] of used) handle.retire(pool);
  }, HUNG_AFTER_MS);
  timer.unref();
}
