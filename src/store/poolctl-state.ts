import type { KeyCondition, KeyHealth } from "../pool/key-state";

/**
 * poolctl's `state_file`: a JSON array with one object per token (never the token itself), e.g.
 * `{"id":"key1","weight":5,"status":"live","last_check":"…","last_used":"…","cooling_until":"…",
 * "fails":0,"requests":0,"errors":0,"last_status":0}`; Go's zero time (year 1) means "never".
 */

/** What keypool takes over from one poolctl entry. Weights are not: they come from the tokens file. */
export interface RestoredKeyState {
  id: string;
  condition: KeyCondition;
  lastCheck: number | null;
  lastUsed: number | null;
  requests: number;
  errors: number;
  consecutiveFailures: number;
  lastCheckStatus: number | null;
}

const HEALTH_OF: Record<string, KeyHealth> = {
  live: "live",
  dead: "dead",
  unknown: "unknown",
  quarantined: "quarantined",
};

/**
 * Reads poolctl's JSON state. Entries that are not objects with a string id are skipped, and fields
 * of the wrong type read as absent: a state file is a cache of what was learned, never worth refusing to start.
 * @throws SyntaxError when the text is not JSON, TypeError when it is not an array.
 */
export function parsePoolctlState(text: string): RestoredKeyState[] {
  const entries: unknown = JSON.parse(text);
  if (!Array.isArray(entries)) throw new TypeError("expected a JSON array of tokens");
  return entries.flatMap((entry) => {
    if (typeof entry !== "object" || entry === null || typeof (entry as { id?: unknown }).id !== "string") return [];
    return [restore(entry as Record<string, unknown>)];
  });
}

function restore(entry: Record<string, unknown>): RestoredKeyState {
  const status = typeof entry.status === "string" ? entry.status : "unknown";
  const health = HEALTH_OF[status] ?? "unknown";
  const coolingUntil = timeOf(entry.cooling_until) ?? 0;
  // A dead key waits for a probe, not a clock; every other rest carries over as it was.
  const readyAt = health === "dead" ? 0 : coolingUntil;
  const resting = readyAt > 0 ? "resting (carried over from poolctl)" : null;
  const reason = health === "live" || health === "unknown" ? resting : `${health} (carried over from poolctl)`;
  return {
    id: entry.id as string,
    condition: { health, reason, readyAt },
    lastCheck: timeOf(entry.last_check),
    lastUsed: timeOf(entry.last_used),
    requests: countOf(entry.requests),
    errors: countOf(entry.errors),
    consecutiveFailures: countOf(entry.fails),
    lastCheckStatus: countOf(entry.last_status) || null,
  };
}

/** Epoch ms, or null for a missing, unreadable or zero (year 1) time. */
function timeOf(value: unknown): number | null {
  if (typeof value !== "string") return null;
  const ms = Date.parse(value);
  return Number.isNaN(ms) || ms <= 0 ? null : ms;
}

function countOf(value: unknown): number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 ? value : 0;
}
