/**
 * The ranges every number from outside keypool is held to: config, tokens file, client bodies, query
 * strings, upstream headers and bodies. An upstream cannot be argued with, so what it sends is clamped
 * into range; what an operator or a client writes is refused with the range named, so the mistake is
 * seen. Either way the store never holds NaN, Infinity, or a time it cannot show. docs/limits.md lists
 * every input and the bound it gets.
 */

const DAY_SEC = 86_400;

/**
 * The longest rest anything can impose on a key: an upstream's Retry-After or rate-limit reset, a
 * client's retry_after_sec, a backoff ladder, a configured cooldown. Anything longer is a mistake or
 * hostile, and a key resting for years is as good as deleted.
 */
export const MAX_COOLDOWN_SEC = 7 * DAY_SEC;
export const MAX_COOLDOWN_MS = MAX_COOLDOWN_SEC * 1000;

/**
 * The longest configured duration (intervals, TTLs, timeouts). Also keeps every timer well inside
 * what setTimeout can hold: a longer delay overflows and fires at once, turning a weekly job into a busy loop.
 */
export const MAX_DURATION_SEC = 7 * DAY_SEC;

/** How long a refreshed token may claim to live; a later expiry is taken as this. */
export const MAX_TOKEN_LIFETIME_SEC = 365 * DAY_SEC;

/**
 * Weights under weighted rotation. A key's rank advances by 1/weight per take, so a tiny weight is an
 * infinite stride and a huge one a stride lost to rounding; a million to one is more spread than a pool needs.
 */
export const MIN_WEIGHT = 0.001;
export const MAX_WEIGHT = 1000;

/** rpm, tpm, daily_requests, max_concurrency (pool or key): a PostgreSQL integer column holds them. */
export const MAX_KEY_LIMIT = 1_000_000_000;

/** Tokens one request may report using (`usage` bodies, release bodies). */
export const MAX_REQUEST_TOKENS = 1_000_000_000;

/** Requests or tokens an upstream's rate-limit headers may say are left. */
export const MAX_REMAINING = 1_000_000_000_000;

/** GET /take?wait=: how long a caller may wait in line for a key, in seconds. */
export const MAX_TAKE_WAIT_SEC = 3600;
/** ?limit= on listing routes (events, sessions). */
export const MAX_LIST_LIMIT = 1000;

/** Smaller counts in the config: retries, probe concurrency, failures before dead, sessions, keys. */
export const MAX_RETRIES = 100;
export const MAX_SMALL_COUNT = 10_000;
export const MAX_SESSIONS = 10_000_000;
export const MAX_BODY_BYTES_LIMIT = 1024 * 1024 * 1024;
/** A backoff ladder's growth factor: base × factor^n passes MAX_COOLDOWN within a few rungs anyway. */
export const MAX_BACKOFF_FACTOR = 100;
/** USD per million tokens: well above any model's price, far below where a cost sum loses precision. */
export const MAX_PRICE_PER_MTOK = 1_000_000;

/** A spend cap in USD per window (day or month): far past any real budget, far below where micro-dollar sums lose precision. */
export const MAX_BUDGET_USD = 1_000_000_000;

/**
 * USD as the micro-dollars spend is counted in. A positive amount is at least one micro-dollar: a cap
 * rounded to 0 would rest its key for good.
 */
export function microsOfUsd(usd: number): number {
  const micros = Math.round(usd * 1_000_000);
  return usd > 0 ? Math.max(1, micros) : micros;
}

/** A model name's length (`ft:gpt-4o-mini:org:name:id` and Bedrock's ids are the long ones). */
export const MAX_MODEL_NAME_LENGTH = 256;
/** Models one key may be restricted to (`models=` in the tokens file), or a pool may give limits for. */
export const MAX_MODELS = 1000;

/** The last moment an ISO 8601 time with a four-digit year can show: 9999-12-31T23:59:59.999Z. */
export const MAX_TIME_MS = 253_402_300_799_999;

/** The number clamped into [min, max]; NaN becomes `min`. */
export function clamp(value: number, min: number, max: number): number {
  if (Number.isNaN(value)) return min;
  return Math.min(max, Math.max(min, value));
}

/** An upstream's asked-for wait, in ms, held to [0, MAX_COOLDOWN_MS]. */
export function clampCooldownMs(ms: number): number {
  return Math.ceil(clamp(ms, 0, MAX_COOLDOWN_MS));
}

/** A count an upstream reported, as a whole number in [0, max]. */
export function clampCount(value: number, max: number): number {
  return Math.floor(clamp(value, 0, max));
}

/** An epoch-ms time as it may be stored and shown: NaN and times before 1970 become 0, the far future MAX_TIME_MS. */
export function clampTime(ms: number): number {
  return clamp(ms, 0, MAX_TIME_MS);
}

/**
 * A stored time as ISO 8601. Never throws: a time out of range (written by an older keypool, or by
 * hand) is shown clamped, so one odd row cannot take /status or /events down.
 */
export function isoTime(ms: number): string {
  return new Date(clampTime(ms)).toISOString();
}

/**
 * A decimal number as written by a person: digits, an optional sign, fraction and exponent. Refuses
 * what `Number()` would also take — hex (`0x10`), binary, `Infinity`, blanks — since nobody writes
 * a weight or a limit that way on purpose.
 */
export function parseDecimal(text: string): number | undefined {
  const trimmed = text.trim();
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(trimmed)) return undefined;
  const n = Number(trimmed);
  return Number.isFinite(n) ? n : undefined;
}
