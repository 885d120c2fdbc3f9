import { MAX_REQUEST_TOKENS, clampCount } from "../pool/bounds";
import { FAILURE_BUCKETS, type FailureBucket, type UsageTotals, emptyUsage } from "../pool/usage";
import type { TokenCounts } from "../pool/pricing";

/** One release, as the usage ledger counts it. */
export interface UsageEntry {
  ok: boolean;
  /** The failure's class; ignored for a success. */
  failure?: FailureBucket;
  tokens?: TokenCounts;
  costMicros: number;
}

/** The counting columns of an hourly usage row, in the order both stores write them. */
export const USAGE_COUNT_COLUMNS = [
  "requests",
  "successes",
  ...FAILURE_BUCKETS.map((bucket) => `fail_${bucket}`),
  "input_tokens",
  "output_tokens",
  "cached_tokens",
  "cache_write_tokens",
  "cost_micros",
];

/** What one release adds to its hourly row, in USAGE_COUNT_COLUMNS order after `requests` (always 1). */
export function usageIncrements(entry: UsageEntry): number[] {
  const failed = entry.ok ? undefined : (entry.failure ?? "other");
  return [
    entry.ok ? 1 : 0,
    ...FAILURE_BUCKETS.map((bucket) => (bucket === failed ? 1 : 0)),
    usageCount(entry.tokens?.input),
    usageCount(entry.tokens?.output),
    usageCount(entry.tokens?.cached),
    usageCount(entry.tokens?.cacheWrite),
    // From prices ≤ MAX_PRICE_PER_MTOK and counts ≤ MAX_REQUEST_TOKENS it is finite; NaN would still break a sum.
    Number.isFinite(entry.costMicros) ? Math.max(0, entry.costMicros) : 0,
  ];
}

/** A usage row as either store reads it back: the key plus one number per counting column. */
export type UsageRow = { pool: string; key_id: string } & Record<string, number>;

/** A count as stored: whole, finite, never negative, and no more than one request can use. */
export function usageCount(n: number | undefined): number {
  return n === undefined || !Number.isFinite(n) ? 0 : clampCount(Math.round(n), MAX_REQUEST_TOKENS);
}

/** The domain totals of a usage row. */
export function usageTotalsOf(row: UsageRow): UsageTotals {
  const usage = emptyUsage();
  usage.requests = row.requests ?? 0;
  usage.successes = row.successes ?? 0;
  for (const bucket of FAILURE_BUCKETS) usage.failures[bucket] = row[`fail_${bucket}`] ?? 0;
  usage.inputTokens = row.input_tokens ?? 0;
  usage.outputTokens = row.output_tokens ?? 0;
  usage.cachedTokens = row.cached_tokens ?? 0;
  usage.cacheWriteTokens = row.cache_write_tokens ?? 0;
  usage.costMicros = row.cost_micros ?? 0;
  return usage;
}
