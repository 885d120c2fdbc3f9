/**
 * Cooldown scope: whether a failure rests the (key, model) pair it happened on or the whole key.
 * Providers limit each key per model, so one model's rate limit says nothing about the key's other
 * models; a revoked key or an empty account, on the other hand, fails for every model alike.
 * Pure; the planners ask scopeOf once a failure has a class.
 */
import type { FailureReport } from "./classify";
import type { FailureClass, FailurePolicyConfig, FailureScope } from "./vocabulary";

/**
 * The scope of each class when the pool's `failure_policy:` does not say. `quota` is decided by the
 * answer (see quotaScope); `client` never rests anything, so its scope is moot and kept to the pair.
 */
export const DEFAULT_SCOPES: Readonly<Record<FailureClass, FailureScope | "by_answer">> = {
  // Requests- and tokens-per-minute are published and counted per model.
  rate_limit: "model",
  quota: "by_answer",
  // A revoked or invalid key fails for every model.
  auth: "key",
  // An overloaded model (Anthropic's 529, a provider's 503) is that model's capacity, not the key's.
  overloaded: "model",
  // Large models answer slowly; a small model on the same key is no slower for it.
  timeout: "model",
  // A refused or reset connection is the route to the provider, which every model shares.
  network: "key",
  client: "model",
};

/**
 * A quota that names a model (Gemini's quota ids read `…PerDayPerProjectPerModel…`) is that model's;
 * any other spent quota — billing, credits, an account's monthly cap — is the account's, so the key's.
 */
export function quotaScope(report: FailureReport): FailureScope {
  return PER_MODEL_QUOTA.test(report.body ?? "") ? "model" : "key";
}

const PER_MODEL_QUOTA = /per ?model/i;

/**
 * Where a failure of class `cls` rests: the pool's `failure_policy.<class>.scope` when set, else the
 * default table. Callers without a model never ask: a rest without a model is always the key's.
 */
export function scopeOf(cls: FailureClass, report: FailureReport, policy?: FailurePolicyConfig): FailureScope {
  const configured = cls === "client" ? undefined : policy?.[cls]?.scope;
  if (configured) return configured;
  const scope = DEFAULT_SCOPES[cls];
  return scope === "by_answer" ? quotaScope(report) : scope;
}
