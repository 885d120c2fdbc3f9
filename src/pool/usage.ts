/**
 * Usage accounting: what each key's requests did and cost, counted in hourly buckets. Pure: the
 * store keeps the buckets, this module says which bucket a moment falls in and sums them.
 */

import { FAILURE_CLASSES, type FailureClass } from "./classify";

/** A failure's class, or `other` for one nobody could classify. */
export type FailureBucket = FailureClass | "other";
export const FAILURE_BUCKETS: readonly FailureBucket[] = [...FAILURE_CLASSES, "other"];

export const USAGE_WINDOWS = ["hour", "day", "all"] as const;
export type UsageWindow = (typeof USAGE_WINDOWS)[number];

export const HOUR_MS = 3_600_000;
/** Hourly buckets older than this are folded into each key's lifetime row. */
export const USAGE_RETENTION_MS = 8 * 24 * HOUR_MS;
/** The bucket that holds what was folded out of the hourly ones: `all` still counts it. */
export const LIFETIME_BUCKET = 0;

export interface UsageTotals {
  /** Outcomes reported (releases): each gateway attempt is one. */
  requests: number;
  successes: number;
  failures: Record<FailureBucket, number>;
  /** Every prompt token, cached or not. */
  inputTokens: number;
  outputTokens: number;
  /** Input tokens read from the provider's prompt cache. */
  cachedTokens: number;
  /** Input tokens written to the provider's prompt cache. */
  cacheWriteTokens: number;
  /** Estimated cost in micro-dollars, from the configured prices. */
  costMicros: number;
}

export function emptyUsage(): UsageTotals {
  return {
    requests: 0,
    successes: 0,
    failures: Object.fromEntries(FAILURE_BUCKETS.map((b) => [b, 0])) as Record<FailureBucket, number>,
    inputTokens: 0,
    outputTokens: 0,
    cachedTokens: 0,
    cacheWriteTokens: 0,
    costMicros: 0,
  };
}

export function addUsage(into: UsageTotals, more: UsageTotals): UsageTotals {
  into.requests += more.requests;
  into.successes += more.successes;
  for (const bucket of FAILURE_BUCKETS) into.failures[bucket] += more.failures[bucket];
  into.inputTokens += more.inputTokens;
  into.outputTokens += more.outputTokens;
  into.cachedTokens += more.cachedTokens;
  into.cacheWriteTokens += more.cacheWriteTokens;
  into.costMicros += more.costMicros;
  return into;
}

/** Successes over requests; null before the first request. */
export function successRate(usage: Pick<UsageTotals, "requests" | "successes">): number | null {
  return usage.requests === 0 ? null : usage.successes / usage.requests;
}

/**
 * The prompt-cache hit ratio: input tokens read from the cache over every input token; null before
 * any input. Capped at 1 for a caller who reported cache reads apart from its input.
 */
export function cacheHitRatio(usage: { inputTokens: number; cachedTokens: number }): number | null {
  return usage.inputTokens > 0 ? Math.min(1, usage.cachedTokens / usage.inputTokens) : null;
}

/** The start of the hourly bucket `at` falls in. */
export function hourOf(at: number): number {
  return at - (at % HOUR_MS);
}

/**
 * The first bucket a window counts. Buckets are whole hours, so `hour` counts every bucket that
 * overlaps the last 60 minutes (60 to 120 minutes of data) and `day` the last 24 hours (24 to 25).
 */
export function windowStart(window: UsageWindow, now: number): number {
  if (window === "all") return LIFETIME_BUCKET;
  return hourOf(now - (window === "hour" ? HOUR_MS : 24 * HOUR_MS));
}
