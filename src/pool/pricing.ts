/**
 * Estimated cost of a request from a per-model price table (USD per million tokens). Pure.
 * A price per million tokens is, conveniently, the price of one token in micro-dollars.
 */

import type { ModelPrice, PriceTable } from "./vocabulary";

export type { ModelPrice, PriceTable };

/** Token counts one request used, as the upstream's `usage` reported them. */
export interface TokenCounts {
  /** Every prompt token, cached or not (Anthropic's cache reads and writes included). */
  input: number;
  output: number;
  /** Input tokens served from the provider's prompt cache, when it says (a part of `input`; see costMicros). */
  cached?: number;
  /** Input tokens written to the provider's prompt cache, when it says (a part of `input`; see costMicros). */
  cacheWrite?: number;
}

// Providers answer with dated snapshots of the model asked for: gpt-4o-mini-2024-07-18, claude-3-5-sonnet-20241022.
const DATED_SUFFIX = /-(\d{4}-\d{2}-\d{2}|\d{8})$/;

/** The price of `model`: its own entry, else the entry of the model without a date suffix. */
export function priceOf(prices: PriceTable | undefined, model: string | undefined): ModelPrice | undefined {
  if (!prices || !model) return undefined;
  return prices[model] ?? prices[model.replace(DATED_SUFFIX, "")];
}

/**
 * Micro-dollars a request cost; 0 when the model has no price. Cache reads and writes are priced at
 * the table's cached_input / cache_write prices when it has them, else as input.
 */
export function costMicros(prices: PriceTable | undefined, model: string | undefined, tokens: TokenCounts): number {
  const price = priceOf(prices, model);
  if (!price) return 0;
  // Cache reads and writes are parts of the input, each at its own price when the table gives one.
  const cached = Math.min(tokens.cached ?? 0, tokens.input);
  const written = Math.min(tokens.cacheWrite ?? 0, tokens.input - cached);
  const plain = tokens.input - cached - written;
  return (
    plain * price.inputPerMtok +
    cached * (price.cachedInputPerMtok ?? price.inputPerMtok) +
    written * (price.cacheWritePerMtok ?? price.inputPerMtok) +
    tokens.output * price.outputPerMtok
  );
}
