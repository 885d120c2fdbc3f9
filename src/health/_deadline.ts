/**
 * One AbortSignal for "the check's own timeout, or the caller gave up", that can still
 * tell afterwards which of the two happened — the reasons differ ("timeout after 10s" vs "aborted").
 */
export interface Deadline {
  signal: AbortSignal;
  /** Why the signal fired, or undefined while it has not. */
  why(): "timeout" | "aborted" | undefined;
  /** Human form of the timeout, e.g. "timeout after 10s". */
  timeoutReason: string;
}

export function deadline(timeoutSec: number, outer?: AbortSignal): Deadline {
  const timeout = AbortSignal.timeout(Math.max(1, Math.round(timeoutSec * 1000)));
  const signal = outer ? AbortSignal.any([timeout, outer]) : timeout;
  return {
    signal,
    why: () => (outer?.aborted ? "aborted" : timeout.aborted ? "timeout" : undefined),
    timeoutReason: `timeout after ${timeoutSec}s`,
  };
}
