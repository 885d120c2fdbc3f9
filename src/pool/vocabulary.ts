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
  /** USD per million input tokens read from the provider's prompt cache; the input price when unset. */
  cachedInputPerMtok?: number;
  /** USD per million input tokens written to the provider's prompt cache; the input price when unset. */
  cacheWritePerMtok?: number;
}

/** `prices:` — model name → price. */
export type PriceTable = Readonly<Record<string, ModelPrice>>;

/**
 * What a failure's rest applies to when the request named a model: the (key, model) pair, or the
 * whole key. Without a model there is no pair, and every rest is the key's (see failure-scope.ts).
 */
export const FAILURE_SCOPES = ["model", "key"] as const;
export type FailureScope = (typeof FAILURE_SCOPES)[number];

/** The classes whose scope a pool may set: every class that rests or quarantines a key (client never does). */
export const SCOPED_CLASSES = ["rate_limit", "quota", "auth", "overloaded", "timeout", "network"] as const;
export type ScopedClass = (typeof SCOPED_CLASSES)[number];

/** `failure_policy:` — per class, what its rest applies to; classes left out keep the default scope. */
export type FailurePolicyConfig = Partial<Record<ScopedClass, { scope: FailureScope }>>;

/** `model_access:` — how a pool recognises "this key cannot use this model", besides the built-in wording. */
export interface ModelAccessConfig {
  /** How long a pair found without access stays out before it is tried again. */
  restSec?: number;
  /** Extra rules, tried before the built-in ones; like classify rules without a class. */
  rules?: ModelAccessRuleConfig[];
}

export interface ModelAccessRuleConfig {
  status?: number[];
  /** A case-insensitive substring of the error body, or a regular expression written `/pattern/flags`. */
  body?: string;
}

/** A model's own limits on a key (`model_limits:`), counted per (key, model) pair like rpm and tpm per key. */
export interface ModelLimit {
  rpm?: number;
  tpm?: number;
}

/** `model_limits:` — model name → its limits on each key. */
export type ModelLimitsConfig = Readonly<Record<string, ModelLimit>>;
