/**
 * The budget an upstream says a key has left, from its rate-limit response headers:
 * OpenAI `x-ratelimit-{remaining,reset}-{requests,tokens}` (resets as durations like `6m0s`) and
 * Anthropic `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{remaining,reset}`
 * (resets as RFC 3339 times). Pure: the caller passes the time the response arrived.
 * What the upstream says is clamped: counts to [0, MAX_REMAINING], resets to at most MAX_COOLDOWN_MS ahead.
 */

import { MAX_COOLDOWN_MS, MAX_REMAINING, clamp, clampCount } from "./bounds";

export interface RateLimitBudget {
  /** Requests left in the current window. */
  requests?: number;
  /** Tokens left: the smallest of the token budgets the upstream reported. */
  tokens?: number;
  /** Epoch ms when the request budget is full again. */
  requestsResetAt?: number;
  /** Epoch ms when the token budget reported in `tokens` is full again. */
  tokensResetAt?: number;
}

interface HeaderSource {
  get(name: string): string | null;
}

const TOKEN_KINDS = ["tokens", "input-tokens", "output-tokens"] as const;

/** Undefined when the response carries no rate-limit headers keypool understands. */
export function parseRateLimitHeaders(headers: HeaderSource, now: number): RateLimitBudget | undefined {
  const requests = reading(headers, "requests", now);
  let tokens: Reading | undefined;
  for (const kind of TOKEN_KINDS) {
    const r = reading(headers, kind, now);
    // The scarcest token budget is the one that stops requests.
    if (r.remaining !== undefined && (tokens?.remaining === undefined || r.remaining < tokens.remaining)) tokens = r;
  }
  const budget: RateLimitBudget = {};
  if (requests.remaining !== undefined) budget.requests = requests.remaining;
  if (requests.resetAt !== undefined) budget.requestsResetAt = requests.resetAt;
  if (tokens?.remaining !== undefined) budget.tokens = tokens.remaining;
  if (tokens?.resetAt !== undefined) budget.tokensResetAt = tokens.resetAt;
  return Object.keys(budget).length === 0 ? undefined : budget;
}

interface Reading {
  remaining?: number;
  resetAt?: number;
}

function reading(headers: HeaderSource, kind: string, now: number): Reading {
  const remaining = count(
    headers.get(`x-ratelimit-remaining-${kind}`) ?? headers.get(`anthropic-ratelimit-${kind}-remaining`),
  );
  const openaiReset = headers.get(`x-ratelimit-reset-${kind}`);
  const anthropicReset = headers.get(`anthropic-ratelimit-${kind}-reset`);
  let resetAt: number | undefined;
  if (openaiReset !== null) {
    const ms = parseDuration(openaiReset);
    resetAt = ms === undefined ? undefined : now + Math.min(ms, MAX_COOLDOWN_MS);
  } else if (anthropicReset !== null) {
    const at = Date.parse(anthropicReset.trim());
    // A reset in the past is kept as it is (the budget is full again); one far ahead is not trusted.
    resetAt = Number.isNaN(at) ? undefined : clamp(at, 0, now + MAX_COOLDOWN_MS);
  }
  return { remaining, resetAt };
}

function count(value: string | null): number | undefined {
  const text = value?.trim();
  if (!text || !/^\d+(\.\d+)?$/.test(text)) return undefined;
  return clampCount(Number(text), MAX_REMAINING);
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A Go-style duration (`20ms`, `1s`, `6m0s`, `1h2m3.5s`) or a bare number of seconds, in ms; not bounded. */
export function parseDuration(value: string): number | undefined {
  const text = value.trim();
  let ms: number;
  if (/^\d+(\.\d+)?$/.test(text)) ms = Number(text) * 1000;
  else if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(text)) return undefined;
  else {
    ms = 0;
    for (const [, amount, , unit] of text.matchAll(/(\d+(\.\d+)?)(ms|s|m|h|d)/g)) {
      ms += Number(amount) * UNIT_MS[unit!]!;
    }
  }
  // May be huge, even Infinity (hundreds of digits): callers hold it to a bound.
  return Math.ceil(ms);
}

/**
 * When a key with this budget may be used again, if it has nothing left: the reset of whatever
 * ran out (the later one when both did). Undefined while something is left, or when the reset is unknown.
 */
export function exhaustedUntil(budget: RateLimitBudget | undefined, now: number): number | undefined {
  if (!budget) return undefined;
  const ends: number[] = [];
  if (budget.requests === 0 && budget.requestsResetAt !== undefined) ends.push(budget.requestsResetAt);
  if (budget.tokens === 0 && budget.tokensResetAt !== undefined) ends.push(budget.tokensResetAt);
  const until = ends.length === 0 ? undefined : Math.max(...ends);
  return until !== undefined && until > now ? until : undefined;
}

/** When the whole budget is full again, for display: the later of the two resets. */
export function fullAt(budget: RateLimitBudget): number | undefined {
  const resets = [budget.requestsResetAt, budget.tokensResetAt].filter((t): t is number => t !== undefined);
  return resets.length === 0 ? undefined : Math.max(...resets);
}
