/**
 * Key states and the transitions between them. Pure: every function takes the time it needs.
 *
 * What is stored is a key's *health* (what we last learned about it) plus `readyAt`, the moment a
 * rest ends. "cooling" is not stored: a healthy key whose rest has not ended is cooling, and stops
 * cooling by itself when the clock passes `readyAt` — no timer has to flip it back.
 */

import { DEFAULT_LADDERS, type Ladders, backoffMs } from "./backoff";
import { MAX_COOLDOWN_MS, clampCooldownMs } from "./bounds";
import { type ClassifyRule, type FailureClass, classifyFailure } from "./classify";
import type { TokenCounts } from "./pricing";
import type { RateLimitBudget } from "./rate-limit-headers";

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
  /** The start of the upstream's error body, for classification (only MAX_ERROR_BODY characters are read). */
  body?: string;
  /** The caller's own verdict on the failure; wins over classification. */
  class?: FailureClass;
  /** At least this rest after a classified failure (the gateway's upstream.cooldown_sec). */
  minRestMs?: number;
  /** What the upstream's rate-limit headers said is left (applied by the store). */
  budget?: RateLimitBudget;
  /** Tokens the request used, counted against tpm (applied by the store); defaults to usage's input + output. */
  tokens?: number;
  /** What the upstream's `usage` said the request used: recorded per key, and priced by `model`. */
  usage?: TokenCounts;
  /** The model the request named, to look its price up. */
  model?: string;
  /** The sticky session the request belonged to: `usage` is also added to that session's totals. */
  session?: string;
  /**
   * A fixed effect instead of the class's ladder, for callers whose vocabulary fixes it (see
   * reported-health.ts): rest exactly `restMs`, or with `restMs` null stay out until a success,
   * a probe or an operator revives the key. `reason` says which report it was.
   */
  verdict?: { restMs: number | null; reason: string };
}

/** Where a key stands on its backoff ladder. */
export interface LadderPosition {
  /** The class of the key's last failure; null after a success. */
  failClass: FailureClass | null;
  /** Failures of `failClass` in a row: 1 is the first rung, 0 means no failure since the last success. */
  rung: number;
  /**
   * When the current rung's rest ends. A failure reported before then belongs to the same episode
   * (requests that were already in flight) and does not climb the ladder.
   */
  failUntil: number;
}

export const CLEAN_LADDER: LadderPosition = { failClass: null, rung: 0, failUntil: 0 };

export interface RestPolicy {
  /** Rest after every take and after every unclassified failure; 0 disables it. */
  cooldownSec: number;
  /**
   * How long an auth failure keeps a key out when no health check can revive it.
   * Undefined: quarantined until a probe succeeds.
   */
  quarantineSec?: number;
  /** The pool's own classification rules, tried before the built-in ones. */
  classify?: readonly ClassifyRule[];
  /** Per-class ladders; DEFAULT_LADDERS when unset. */
  ladders?: Ladders;
}

/** A key after an outcome: its condition, its ladder, and the class the outcome was given. */
export interface OutcomeEffect extends KeyCondition, LadderPosition {
  /** Undefined for a success and for a failure nobody could classify. */
  class?: FailureClass;
}

const AUTH_STATUSES = new Set([401, 403]);

/** The rest a take imposes: the key is not handed out again until it ends. */
export function afterTake(key: KeyCondition, policy: RestPolicy, now: number): KeyCondition {
  if (policy.cooldownSec <= 0) return key;
  const readyAt = Math.max(key.readyAt, now + clampCooldownMs(policy.cooldownSec * 1000));
  return { ...key, readyAt, reason: "resting after take" };
}

/**
 * Applies a reported outcome. A success resets the ladder; a failure is classified (unless the
 * caller gave a class) and rests the key on its class's ladder. A rest already set is never
 * shortened: a key that failed while resting keeps the longer of the two rests.
 * `random` jitters ladder rests (see backoffMs); tests pass `() => 0` for exact rests.
 * No rest is longer than MAX_COOLDOWN_MS, whatever the caller or the upstream asked for.
 */
export function afterOutcome(
  key: KeyCondition & Partial<LadderPosition>,
  outcome: Outcome,
  policy: RestPolicy,
  now: number,
  random: () => number = Math.random,
): OutcomeEffect {
  // Every release of a healthy key comes this way: literals, not spreads (which copy property by property).
  if (outcome.ok) {
    const reason = key.health === "disabled" || key.readyAt > now ? key.reason : null;
    const health = key.health === "disabled" ? key.health : "live";
    return { health, reason, readyAt: key.readyAt, failClass: null, rung: 0, failUntil: 0 };
  }
  const ladder: LadderPosition = {
    failClass: key.failClass ?? null,
    rung: key.rung ?? 0,
    failUntil: key.failUntil ?? 0,
  };
  const condition: KeyCondition = { health: key.health, reason: key.reason, readyAt: key.readyAt };
  const cls = outcome.class ?? classifyFailure(outcome, policy.classify);
  if (outcome.verdict) return afterVerdict(key, ladder, outcome.verdict, cls, now);
  const retryAfterMs = outcome.retryAfterMs === undefined ? undefined : clampCooldownMs(outcome.retryAfterMs);
  const what = describeFailure(outcome);
  // Never the key's fault (a prompt too long, a malformed request): nothing changes.
  if (cls === "client") return { ...condition, ...ladder, class: cls };
  if (cls === "auth") return { ...quarantine(what, policy, now), ...climb(ladder, cls, 0, now), class: cls };
  // Out until a probe or an operator says otherwise: a rest would turn that into a timed wait.
  if (!isTakeable(key)) return { ...condition, ...ladder, class: cls };
  if (cls === undefined) {
    const restMs = clampCooldownMs(Math.max(policy.cooldownSec * 1000, retryAfterMs ?? 0));
    const readyAt = restMs > 0 ? Math.max(key.readyAt, now + restMs) : key.readyAt;
    return { ...condition, ...ladder, readyAt, reason: readyAt > now ? `cooling after ${what}` : `failed (${what})` };
  }
  const sameEpisode = ladder.failClass === cls && ladder.failUntil > now;
  const rung = sameEpisode ? ladder.rung : ladder.failClass === cls ? ladder.rung + 1 : 1;
  const ladderOf = (policy.ladders ?? DEFAULT_LADDERS)[cls];
  // A failure of a request already in flight when the rung began only honours a longer Retry-After.
  const earned = sameEpisode ? (retryAfterMs ?? 0) : backoffMs(ladderOf, rung, random, retryAfterMs);
  const restMs = clampCooldownMs(Math.max(earned, outcome.minRestMs ?? 0));
  const readyAt = Math.max(key.readyAt, now + restMs);
  const failUntil = Math.max(sameEpisode ? ladder.failUntil : 0, now + restMs);
  return {
    ...condition,
    readyAt,
    reason: `${cls} (${what}); rung ${rung}, resting ${formatDuration(readyAt - now)}`,
    failClass: cls,
    rung,
    failUntil,
    class: cls,
  };
}

/** A fixed verdict never climbs past an operator's switch, and a rest never revives a key that is out. */
function afterVerdict(
  key: KeyCondition,
  ladder: LadderPosition,
  verdict: NonNullable<Outcome["verdict"]>,
  cls: FailureClass | undefined,
  now: number,
): OutcomeEffect {
  const condition: KeyCondition = { health: key.health, reason: key.reason, readyAt: key.readyAt };
  if (key.health === "disabled") return { ...condition, ...ladder, class: cls };
  if (verdict.restMs === null) {
    const position = cls ? climb(ladder, cls, 0, now) : ladder;
    return { health: "quarantined", readyAt: 0, reason: verdict.reason, ...position, class: cls };
  }
  if (!isTakeable(key)) return { ...condition, ...ladder, class: cls };
  const readyAt = Math.max(key.readyAt, now + verdict.restMs);
  const position = cls ? climb(ladder, cls, readyAt, now) : ladder;
  const reason = `${verdict.reason}; back in ${formatDuration(readyAt - now)}`;
  return { ...condition, readyAt, reason, ...position, class: cls };
}

function quarantine(what: string, policy: RestPolicy, now: number): KeyCondition {
  if (policy.quarantineSec === undefined) {
    return { health: "quarantined", readyAt: 0, reason: `auth failure (${what}); waiting for a health check` };
  }
  const readyAt = now + clampCooldownMs(Math.max(1, policy.quarantineSec) * 1000);
  return {
    health: "quarantined",
    readyAt,
    reason: `auth failure (${what}); no health check, retried after quarantine_sec`,
  };
}

function climb(ladder: LadderPosition, cls: FailureClass, failUntil: number, now: number): LadderPosition {
  const same = ladder.failClass === cls;
  return { failClass: cls, rung: same && ladder.failUntil > now ? ladder.rung : same ? ladder.rung + 1 : 1, failUntil };
}

function describeFailure(outcome: Outcome): string {
  if (outcome.status !== undefined) return `HTTP ${outcome.status}`;
  return outcome.error ?? "reported failure";
}

/**
 * A rest imposed from outside the key's own outcome: its quota group failed, the upstream's
 * budget ran out, or one of its own limits was reached. Never shortens a rest, and leaves keys
 * that are out for another reason (quarantined, dead, disabled) as they are.
 */
export function restUntil(key: KeyCondition, until: number, reason: string, now: number): KeyCondition {
  const bounded = Math.min(until, now + MAX_COOLDOWN_MS);
  if (!isTakeableHealth(key.health) || bounded <= now || bounded <= key.readyAt) return key;
  return { ...key, readyAt: bounded, reason };
}

/** `45s`, `5m`, `1h 30m`: rests as /status reasons show them. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return s % 60 === 0 ? `${s / 60}m` : `${Math.floor(s / 60)}m ${s % 60}s`;
  const m = Math.round(s / 60);
  return m % 60 === 0 ? `${m / 60}h` : `${Math.floor(m / 60)}h ${m % 60}m`;
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
      condition: {
        health: "live",
        readyAt: revived ? 0 : key.readyAt,
        reason: revived ? "revived by health check" : key.reason,
      },
      consecutiveFailures: 0,
    };
  }
  if (check.status !== undefined && AUTH_STATUSES.has(check.status)) {
    return {
      condition: { ...key, health: "quarantined", readyAt: 0, reason: `health check: ${check.reason}` },
      consecutiveFailures: consecutiveFailures + 1,
    };
  }
  if (check.status === 429) {
    const restSec = check.retryAfterSec ?? policy.cooldownSec;
    const readyAt = Math.max(key.readyAt, now + clampCooldownMs(restSec * 1000));
    return { condition: { ...key, readyAt, reason: `health check: ${check.reason}` }, consecutiveFailures };
  }
  const failures = consecutiveFailures + 1;
  if (failures >= policy.failuresToDead) {
    return {
      condition: { ...key, health: "dead", reason: `health check failed ${failures} times: ${check.reason}` },
      consecutiveFailures: failures,
    };
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
  const interval = awaitsRevival(health)
    ? (schedule.reviveIntervalSec ?? DEFAULT_REVIVE_INTERVAL_SEC)
    : schedule.recheckIntervalSec;
  const regular = now + jitteredMs(interval, random);
  if (expiresAt === null || schedule.refreshAheadSec === undefined) return regular;
  const refreshAt = expiresAt - schedule.refreshAheadSec * 1000;
  return refreshAt > now ? Math.min(regular, refreshAt) : regular;
}
