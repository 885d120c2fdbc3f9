import { SQL } from "bun";
import { DomainError } from "../../pool/errors";

export const DEFAULT_TIMEOUT_SEC = 5;
export const DEFAULT_MAX_CONNECTIONS = 10;

export interface ConnectionOptions {
  url: string;
  /** A connection attempt, a statement or a lock wait that takes longer fails (STORE_UNAVAILABLE). */
  timeoutSec?: number;
  maxConnections?: number;
}

/** The client pool. Session settings make the server end a stuck statement itself, not only our timer. */
export function openClient(options: ConnectionOptions): SQL {
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

// SQLSTATE classes and codes that mean "the database is not there right now", not "the request is wrong".
const UNAVAILABLE_STATES = /^(08|57P0|53)/;
const TIMEOUT_STATES = new Set(["57014", "55P03"]);

/** Whether an error from the client means the database could not be reached or did not answer in time. */
export function isUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const { code, errno } = error as { code?: string; errno?: string | number };
  if (typeof code === "string" && /^ERR_POSTGRES_(CONNECTION_|IDLE_TIMEOUT|LIFETIME_TIMEOUT|TLS_)/.test(code)) return true;
  if (typeof code === "string" && /^(ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|ENOTFOUND|EPIPE)$/.test(code)) return true;
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
  const what = cause === "timeout" ? `did not answer within ${timeoutSec}s` : `is unreachable${code ? ` (${code})` : ""}`;
  return new DomainError("STORE_UNAVAILABLE", `the PostgreSQL store ${what}; keypool retries by itself — try again shortly`, 1000);
}

/**
 * Runs `op` with a deadline: past `timeoutSec`, or on a connection error, the caller gets
 * STORE_UNAVAILABLE rather than waiting. The statement may still finish on the server; every write
 * is one transaction, so it either happened whole or not at all.
 */
export async function withDeadline<T>(op: () => Promise<T>, timeoutSec: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(unavailableError("timeout", timeoutSec)), timeoutSec * 1000);
  });
  try {
    return await Promise.race([op(), deadline]);
  } catch (error) {
    if (isUnavailable(error)) throw unavailableError(error, timeoutSec);
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
