import type { FailureClass } from "../pool/classify";
import type { BudgetAlert, KeyEvent } from "./types";

/** The event log keeps this many of the most recent transitions; older rows are pruned as new ones arrive. */
export const MAX_EVENTS = 10_000;

/** An event as both stores keep it: one row per transition. */
export interface EventRow {
  at: number;
  pool: string;
  key_id: string;
  from_state: KeyEvent["from"];
  to_state: KeyEvent["to"];
  class: FailureClass | null;
  reason: string | null;
  until: number | null;
  /** Set for a (key, model) pair's transition; absent from rows written before model-aware keys. */
  model?: string | null;
  /** Set for a spend cap's threshold (schema step 11). */
  alert?: BudgetAlert | null;
}

export function eventOfRow(r: EventRow): KeyEvent {
  return {
    at: r.at,
    pool: r.pool,
    key: r.key_id,
    ...(r.model ? { model: r.model } : {}),
    ...(r.alert ? { alert: r.alert } : {}),
    from: r.from_state,
    to: r.to_state,
    class: r.class,
    reason: r.reason,
    until: r.until,
  };
}
