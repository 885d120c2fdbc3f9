/** Every failure a caller can cause or observe has a code; src/http maps codes to statuses in one table. */
export type ErrorCode =
  | "NO_KEY_AVAILABLE"
  /** The pool has spent its budget (its `budget:` cap) for the current UTC day or month; retryAfterMs is the reset. */
  | "BUDGET_EXHAUSTED"
  | "UNKNOWN_LEASE"
  | "UNKNOWN_KEY"
  | "UNKNOWN_POOL"
  | "AMBIGUOUS_KEY"
  | "BAD_REQUEST"
  | "UNAUTHORIZED"
  | "PAYLOAD_TOO_LARGE"
  | "NOT_FOUND"
  | "INVALID_CONFIG"
  /** The admin API refuses to change a key its tokens file (or the environment) defines. */
  | "KEY_OWNED_BY_FILE"
  | "KEY_OWNED_BY_ENV"
  /** The admin API was asked to add a key whose id or token the pool already has. */
  | "KEY_EXISTS"
  /** The shared store (PostgreSQL) cannot be reached or did not answer in time; the daemon keeps running and recovers by itself. */
  | "STORE_UNAVAILABLE"
  /**
   * The SQLite state file was deleted or replaced under the running process: what it would hand out
   * no longer agrees with other processes on that path. Nothing recovers it but a restart.
   */
  | "STATE_FILE_LOST"
  /** A request named a Host that a loopback listener without credentials does not answer (DNS rebinding). */
  | "HOST_NOT_ALLOWED"
  /** A listener is serving server.max_connections requests already; this one is turned away. */
  | "SERVER_BUSY";

export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** For NO_KEY_AVAILABLE: how long until the soonest key frees up; for STORE_UNAVAILABLE: when to try again. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "DomainError";
  }
}
