/**
 * What an alert says and how it is written for a webhook. Pure: no I/O, time comes in as numbers.
 * An alert names a key by its id only: tokens never leave the process this way.
 */
import { isoTime } from "../pool/bounds";
import type { AlertEvent, WebhookConfig } from "../config/types";
import { KEY_STATES, type KeyState } from "../pool/key-state";
import type { KeyEvent } from "../store/types";

export interface Alert {
  /** `test` only ever comes from `keypool alerts test`. */
  event: AlertEvent | "test";
  pool: string;
  /** The key's id; null for pool-wide events. */
  key: string | null;
  /** The key's state after the event; null for pool-wide events. */
  state: KeyState | null;
  /** The state before, for transitions. */
  from?: KeyState | null;
  reason: string | null;
  /** Epoch ms when the state ends by itself, if it does. */
  until: number | null;
  /** Epoch ms when it happened. */
  at: number;
  /** For pool_below_min_live: keys that can serve now, and the configured floor. */
  live?: number;
  minLive?: number;
}

const OUT: ReadonlySet<KeyState> = new Set(["dead", "quarantined"]);
const SERVING: ReadonlySet<KeyState> = new Set(["live", "unknown", "cooling"]);

/** The alert a recorded state transition raises, if any. */
export function alertOfTransition(e: KeyEvent): Alert | undefined {
  // A spend cap's 80% or 100%: logged once per window by the release that crossed it. The pool's own
  // cap is logged under key "".
  if (e.alert !== undefined)
    return {
      event: e.alert,
      pool: e.pool,
      key: e.key || null,
      state: null,
      reason: e.reason,
      until: e.until,
      at: e.at,
    };
  // A pair's rest or denial leaves the key serving its other models: nothing an operator must act on.
  if (e.model !== undefined || !isKeyState(e.from) || !isKeyState(e.to)) return undefined;
  const base = { pool: e.pool, key: e.key, state: e.to, from: e.from, reason: e.reason, until: e.until, at: e.at };
  if (e.to === "dead" && e.from !== "dead") return { event: "key_dead", ...base };
  if (e.to === "quarantined" && e.from !== "quarantined") return { event: "key_quarantined", ...base };
  if (OUT.has(e.from) && SERVING.has(e.to)) return { event: "key_recovered", ...base };
  return undefined;
}

function isKeyState(state: KeyEvent["from"]): state is KeyState {
  return (KEY_STATES as readonly string[]).includes(state);
}

/** Whether `hook` wants to hear about `alert` (a test alert goes to every webhook). */
export function wants(hook: WebhookConfig, alert: Alert): boolean {
  return alert.event === "test" || hook.events === undefined || hook.events.includes(alert.event);
}

/** The request body for `format`: a flat JSON object, or Slack's `{ text }`. */
export function payloadOf(alert: Alert, format: WebhookConfig["format"]): Record<string, unknown> {
  if (format === "slack") return { text: `[keypool] ${describeAlert(alert)}` };
  return {
    event: alert.event,
    pool: alert.pool,
    key: alert.key,
    state: alert.state,
    from: alert.from ?? null,
    reason: alert.reason,
    until: isoOrNull(alert.until),
    time: isoTime(alert.at),
    ...(alert.live !== undefined ? { live: alert.live, min_live: alert.minLive } : {}),
    message: describeAlert(alert),
  };
}

/** One readable line, e.g. `key k1 in pool openai is dead: HTTP 401`. */
export function describeAlert(alert: Alert): string {
  const key = `key ${alert.key} in pool ${alert.pool}`;
  const why = alert.reason ? `: ${alert.reason}` : "";
  const until = alert.until === null ? "" : ` (until ${isoTime(alert.until)})`;
  switch (alert.event) {
    case "key_dead":
      return `${key} is dead${why}`;
    case "key_quarantined":
      return `${key} is quarantined${why}${until}`;
    case "key_recovered":
      return `${key} recovered (${alert.from} → ${alert.state})`;
    case "pool_below_min_live":
      return `pool ${alert.pool} is below min_live${why}`;
    case "pool_exhausted":
      return `pool ${alert.pool} is exhausted: no key could serve a request${why}${until}`;
    case "refresh_failed":
      return `token refresh failed for ${key}${why}`;
    case "budget_warning":
    case "budget_exhausted":
      return `${alert.key === null ? `pool ${alert.pool}` : key}: ${alert.reason ?? "budget"}`;
    case "test":
      return `test alert for pool ${alert.pool}: this webhook receives keypool alerts`;
  }
}

/** A webhook URL as it may be shown: its origin only, since the path or query often is the secret. */
export function originOf(url: string): string {
  return URL.canParse(url) ? new URL(url).origin : "(invalid URL)";
}

function isoOrNull(ms: number | null): string | null {
  return ms === null ? null : isoTime(ms);
}
