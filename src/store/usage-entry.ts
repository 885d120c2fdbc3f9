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
  return addUsageEntry(new Array<number>(USAGE_COUNT_COLUMNS.length).fill(0), entry).slice(1);
}

/**
 * Adds one release to `counts`, an hourly row's counts in USAGE_COUNT_COLUMNS order (requests first),
 * in place: the copy's hot path counts every release into the row it keeps, with no array per release.
 */
export function addUsageEntry(counts: number[], entry: UsageEntry): number[] {
  counts[0]! += 1;
  if (entry.ok) counts[1]! += 1;
  else {
    const bucket = FAILURE_BUCKETS.indexOf(entry.failure ?? "other");
    if (bucket >= 0) counts[2 + bucket]! += 1;
  }
  const tokens = entry.tokens;
  const at = 2 + FAILURE_BUCKETS.length;
  if (tokens) {
    counts[at]! += usageCount(tokens.input);
    counts[at + 1]! += usageCount(tokens.output);
    counts[at + 2]! += usageCount(tokens.cached);
    counts[at + 3]! += usageCount(tokens.cacheWrite);
  }
  // From prices ≤ MAX_PRICE_PER_MTOK and counts ≤ MAX_REQUEST_TOKENS it is finite; NaN would still break a sum.
  counts[at + 4]! += Number.isFinite(entry.costMicros) ? Math.max(0, entry.costMicros) : 0;
  return counts;
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
