/**
 * The pool's vocabulary: the words every layer shares for how keys rotate, why they fail, how long
 * they rest and what their requests cost. The domain owns them; the config layer parses into them.
 */

export const ROTATIONS = ["lru", "round_robin", "random", "weighted", "most_remaining", "least_busy"] as const;
export type Rotation = (typeof ROTATIONS)[number];

/** Why a key failed, as far as it matters for what to do with the key (see src/pool/classify.ts). */
export const FAILURE_CLASSES = ["rate_limit", "quota", "auth", "overloaded", "timeout", "network", "client"] as const;
export type FailureClass = (typeof FAILURE_CLASSES)[number];

/** The classes that rest a key on a backoff ladder (auth quarantines; client is never the key's fault). */
export const LADDER_CLASSES = ["rate_limit", "quota", "overloaded", "timeout", "network"] as const;
export type LadderClass = (typeof LADDER_CLASSES)[number];

/** A pool's own classification rule; a rule matches when every field it gives matches. */
export interface ClassifyRuleConfig {
  status?: number[];
  /** A case-insensitive substring of the error body, or a regular expression written `/pattern/flags`. */
  body?: string;
  class: FailureClass;
}

/**
 * One ladder as configured; unset fields keep the built-in ladder's. Rung n (from 0) rests
 * `base × factor^n` (exponential) or `base + step × n` (linear), never more than `max`.
 */
export interface LadderConfig {
  baseSec?: number;
  factor?: number;
  stepSec?: number;
  maxSec?: number;
}

export type BackoffConfig = Partial<Record<LadderClass, LadderConfig>>;

export interface ModelPrice {
  /** USD per million input (prompt) tokens. */
  inputPerMtok: number;
  /** USD per million output (completion) tokens. */
  outputPerMtok: number;
}

/** `prices:` — model name → price. */
export type PriceTable = Readonly<Record<string, ModelPrice>>;
