import { type FailureClass, classifyFailure } from "./classify";
import type { Outcome } from "./key-state";

/**
 * Health as key-pool services in the Key Pool Manager mould report it (`POST /health/:pool`), and
 * what each word does to the key. Those tools give each word a fixed effect rather than a backoff
 * ladder, and their clients are written against it, so the effect is fixed here too.
 */

export const REPORTED_HEALTH = ["healthy", "degraded", "failed", "rate_limited"] as const;
export type ReportedHealth = (typeof REPORTED_HEALTH)[number];

/** How long a reported trouble keeps the key out; `failed` has no end (see outcomeOfReport). */
export const REPORTED_REST_MS = { degraded: 5 * 60_000, rate_limited: 15 * 60_000 } as const;

/** The class a report is counted under (usage ledger, metrics, /status `class`) when its error says nothing more. */
const CLASS_OF: Record<Exclude<ReportedHealth, "healthy">, FailureClass> = {
  degraded: "overloaded",
  rate_limited: "rate_limit",
  failed: "auth",
};

/**
 * The outcome a report stands for. `degraded` and `rate_limited` rest the key for exactly their
 * REPORTED_REST_MS; `failed` keeps it out until a healthy report, a health check or an operator
 * brings it back. The error text (≤ 4 KB) only refines the class the failure is counted under.
 */
export function outcomeOfReport(status: ReportedHealth, error?: string | null): Outcome {
  if (status === "healthy") return { ok: true };
  const body = error ? error.slice(0, 4096) : undefined;
  const cls = (body && classifyFailure({ body })) || CLASS_OF[status];
  if (status === "failed") {
    const reason = "reported failed; out until reported healthy, re-added or revived by a check";
    return { ok: false, class: cls, body, verdict: { restMs: null, reason } };
  }
  const verdict = { restMs: REPORTED_REST_MS[status], reason: `reported ${status}` };
  return { ok: false, class: CLASS_OF[status], body, verdict };
}

/** The report word a key's state reads as, for `/status` in those tools' terms. */
export function reportedHealthOf(key: { state: string; failClass: FailureClass | null }): ReportedHealth {
  switch (key.state) {
    case "quarantined":
    case "dead":
    case "disabled":
      return "failed";
    case "cooling":
      if (key.failClass === "rate_limit" || key.failClass === "quota") return "rate_limited";
      // A rest after a take or at the key's own limits is no trouble with the key.
      return key.failClass === null ? "healthy" : "degraded";
    default:
      return "healthy";
  }
}
