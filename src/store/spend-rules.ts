import { type BudgetCrossing, type BudgetRest, describeCrossing } from "../pool/budget";
import { DomainError } from "../pool/errors";
import { type KeyState, formatDuration } from "../pool/key-state";
import type { KeyEvent } from "./types";

/** What both stores answer a take from a pool whose total has reached its cap. */
export function budgetExhausted(pool: string, spent: BudgetRest, now: number): DomainError {
  const retryAfterMs = spent.until - now;
  return new DomainError(
    "BUDGET_EXHAUSTED",
    `pool "${pool}" has spent its ${spent.reason}; retry in ${formatDuration(retryAfterMs)}`,
    retryAfterMs,
  );
}

/**
 * The events a release's cost logs, one per threshold it crossed, for the key `id` ("" for the pool's
 * own cap). They raise the budget alerts; `from`/`to` name the state of the key whose release crossed.
 */
export function crossingEvents(
  pool: string,
  id: string,
  state: KeyState,
  crossings: readonly BudgetCrossing[],
  now: number,
): KeyEvent[] {
  return crossings.map((c) => ({
    at: now,
    pool,
    key: id,
    from: state,
    to: state,
    class: null,
    reason: describeCrossing(c, now),
    until: c.level === "exhausted" ? c.resetAt : null,
    alert: c.level === "warning" ? "budget_warning" : "budget_exhausted",
  }));
}
