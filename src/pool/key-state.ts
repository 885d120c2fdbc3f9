/**
 * Key states and the transitions between them. Pure: every function takes the time it needs.
 *
 * What is stored is a key's *health* (what we last learned about it) plus `readyAt`, the moment a
 * rest ends. "cooling" is not stored: a healthy key whose rest has not ended is cooling, and stops
 * cooling by itself when the clock passes `readyAt` — no timer has to flip it back.
 */

export type KeyHealth = "unknown" | "live" | "quarantined" | "dead" | "disabled";
export type KeyState = KeyHealth | "cooling";
export const KEY_STATES: readonly KeyState[] = ["unknown", "live", "cooling", "quarantined", "dead", "disabled"];

/** The part of a key that transitions read and write. */
export interface KeyCondition {
  health: KeyHealth;
  /** Why the key is in its current state; null when there is nothing to say. */
  reason: string | null;
  /** Epoch ms when a rest ends; 0 when the key is not resting. */
  readyAt: number;
}

/** Only unknown and live keys are ever handed out; the others wait for a probe or an operator. */
export function isTakeableHealth(health: KeyHealth): boolean {
  return health === "unknown" || health === "live";
}

/**
 * A quarantine with an end (readyAt > 0) is the fallback for pools without a health check: nothing
 * would ever revive the key otherwise, so it goes back on probation once the time is up.
 */
function isTimedQuarantine(key: KeyCondition): boolean {
  return key.health === "quarantined" && key.readyAt > 0;
}

/** Whether the store may hand the key out once its rest (readyAt) is over. */
export function isTakeable(key: KeyCondition): boolean {
  return isTakeableHealth(key.health) || isTimedQuarantine(key);
}

export function stateOf(key: KeyCondition, now: number): KeyState {
  if (isTimedQuarantine(key)) return key.readyAt > now ? "quarantined" : "unknown";
  if (isTakeableHealth(key.health) && key.readyAt > now) return "cooling";
  return key.health;
}

/** When the key's current state ends by itself, if it does. */
export function untilOf(key: KeyCondition, now: number): number | null {
  const state = stateOf(key, now);
  return state === "cooling" || (state === "quarantined" && isTimedQuarantine(key)) ? key.readyAt : null;
}

/** What a caller reports after using a key. */
export interface Outcome {
  ok: boolean;
  /** The upstream HTTP status, when there was one. */
  status?: number;
  /** How long the upstream asked us to wait (Retry-After / retry-after-ms). */
  retryAfterMs?: number;
  /** A transport failure with no status: "timeout", "network". */
  error?: string;
}

export interface RestPolicy {
  /** Rest after every take and after every failure; 0 disables it. */
  cooldownSec: number;
  /**
   * How long an auth failure keeps a key out when no health check can revive it.
   * Undefined: quarantined until a probe succeeds.
   */
  quarantineSec?: number;
}

const AUTH_STATUSES = new Set([401, 403]);

/** The rest a take imposes: the key is not handed out again until it ends. */
export function afterTake(key: KeyCondition, policy: RestPolicy, now: number): KeyCondition {
  if (policy.cooldownSec <= 0) return key;
  return { ...key, readyAt: Math.max(key.readyAt, now + policy.cooldownSec * 1000), reason: "resting after take" };
}

/**
 * Applies a reported outcome. A rest already set is never shortened: a key that failed while
 * resting keeps the longer of the two rests.
 */
export function afterOutcome(key: KeyCondition, outcome: Outcome, policy: RestPolicy, now: number): KeyCondition {
  if (outcome.ok) {
    return { health: "live", readyAt: key.readyAt, reason: key.readyAt > now ? key.reason : null };
  }
  const status = outcome.status;
  if (status !== undefined && AUTH_STATUSES.has(status)) {
    if (policy.quarantineSec === undefined) {
      return { health: "quarantined", readyAt: 0, reason: `auth failure (HTTP ${status}); waiting for a health check` };
    }
    const readyAt = now + Math.max(1, policy.quarantineSec) * 1000;
    return { health: "quarantined", readyAt, reason: `auth failure (HTTP ${status}); no health check, retried after quarantine_sec` };
  }
  const what = status !== undefined ? `HTTP ${status}` : (outcome.error ?? "reported failure");
  const restMs = Math.max(policy.cooldownSec * 1000, outcome.retryAfterMs ?? 0);
  const readyAt = restMs > 0 ? Math.max(key.readyAt, now + restMs) : key.readyAt;
  return { health: key.health, readyAt, reason: readyAt > now ? `cooling after ${what}` : `failed (${what})` };
}

/** An operator's switch: disabled keys are never handed out until enabled again. */
export function setDisabled(key: KeyCondition, disabled: boolean): KeyCondition {
  if (disabled) return { ...key, health: "disabled", reason: "disabled by operator" };
  return key.health === "disabled" ? { ...key, health: "unknown", reason: "enabled by operator" } : key;
}

/** What a probe found. */
export interface CheckOutcome {
  ok: boolean;
  status?: number;
  reason: string;
  retryAfterSec?: number;
}

export interface CheckPolicy extends RestPolicy {
  /** Consecutive failed probes (other than auth and rate limit) before a key is declared dead. */
  failuresToDead: number;
}

/**
 * A probe's verdict. Success revives any key an operator has not disabled; an auth failure
 * quarantines; a rate limit rests the key; other failures count, and enough in a row mean dead.
 */
export function afterCheck(
  key: KeyCondition,
  check: CheckOutcome,
  consecutiveFailures: number,
  policy: CheckPolicy,
  now: number,
): { condition: KeyCondition; consecutiveFailures: number } {
  if (key.health === "disabled") return { condition: key, consecutiveFailures };
  if (check.ok) {
    const revived = key.health !== "live" && key.health !== "unknown";
    return {
      condition: { health: "live", readyAt: revived ? 0 : key.readyAt, reason: revived ? "revived by health check" : key.reason },
      consecutiveFailures: 0,
    };
  }
  if (check.status !== undefined && AUTH_STATUSES.has(check.status)) {
    return { condition: { ...key, health: "quarantined", readyAt: 0, reason: `health check: ${check.reason}` }, consecutiveFailures: consecutiveFailures + 1 };
  }
  if (check.status === 429) {
    const restSec = check.retryAfterSec ?? policy.cooldownSec;
    const readyAt = Math.max(key.readyAt, now + restSec * 1000);
    return { condition: { ...key, readyAt, reason: `health check: ${check.reason}` }, consecutiveFailures };
  }
  const failures = consecutiveFailures + 1;
  if (failures >= policy.failuresToDead) {
    return { condition: { ...key, health: "dead", reason: `health check failed ${failures} times: ${check.reason}` }, consecutiveFailures: failures };
  }
  return { condition: { ...key, reason: `health check: ${check.reason}` }, consecutiveFailures: failures };
}

export const DEFAULT_REVIVE_INTERVAL_SEC = 60;
export const DEFAULT_FAILURES_TO_DEAD = 3;
/** Each check interval is stretched or shrunk by up to this fraction so keys do not march in lockstep. */
export const CHECK_JITTER = 0.1;

export interface CheckSchedule {
  recheckIntervalSec: number;
  /** How often quarantined and dead keys are re-probed; DEFAULT_REVIVE_INTERVAL_SEC when unset. */
  reviveIntervalSec?: number;
  /** With a known token expiry, the check that refreshes it is due this long before; unset ignores expiry. */
  refreshAheadSec?: number;
}

/** Keys the checker probes on the revive schedule because a success is what brings them back. */
export function awaitsRevival(health: KeyHealth): boolean {
  return health === "quarantined" || health === "dead";
}

/** One interval, jittered by ±CHECK_JITTER; `random` returns [0, 1). */
export function jitteredMs(intervalSec: number, random: () => number): number {
  return Math.round(intervalSec * 1000 * (1 - CHECK_JITTER + 2 * CHECK_JITTER * random()));
}

/**
 * When a key should next be probed, given the health a check just left it in. A future token
 * expiry pulls the check forward so the refresh happens `refreshAheadSec` before it; an expiry
 * already inside that window is ignored, or a key whose refresh failed would be probed every tick.
 */
export function nextCheckAt(
  health: KeyHealth,
  expiresAt: number | null,
  schedule: CheckSchedule,
  now: number,
  random: () => number,
): number {
  const interval = awaitsRevival(health) ? (schedule.reviveIntervalSec ?? DEFAULT_REVIVE_INTERVAL_SEC) : schedule.recheckIntervalSec;
  const regular = now + jitteredMs(interval, random);
  if (expiresAt === null || schedule.refreshAheadSec === undefined) return regular;
  const refreshAt = expiresAt - schedule.refreshAheadSec * 1000;
  return refreshAt > now ? Math.min(regular, refreshAt) : regular;
}
