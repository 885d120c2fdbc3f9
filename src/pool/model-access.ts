/**
 * Model access: an answer saying that this key cannot use the model the request named. It is not an
 * auth failure — the key still works for its other models — so it never reaches classifyFailure's
 * auth rule: a caller that knows the model asks deniesModelAccess first, and a match makes the
 * (key, model) pair unusable for a long rest instead of quarantining the key.
 * Without a model nobody asks, and a 403 stays an auth failure and a 404 a client error, as before.
 */
import { type BodyPattern, type FailureReport, MAX_ERROR_BODY, bodyPattern } from "./classify";
import type { ModelAccessConfig, ModelAccessRuleConfig } from "./vocabulary";

export interface ModelAccessRule {
  status?: readonly number[];
  body?: BodyPattern;
}

/** How long a pair found without access stays out when the pool does not say (model_access.rest_sec). */
export const DEFAULT_MODEL_ACCESS_REST_SEC = 6 * 3600;

/** The most rules a pool may add: each is tried against every failed answer that names a model. */
export const MAX_MODEL_ACCESS_RULES = 100;

/** Provider wording for "this key cannot use this model"; a rule matches when every field it gives matches. */
export const BUILT_IN_ACCESS_RULES: readonly ModelAccessRule[] = [
  // OpenAI: 404 {"code":"model_not_found"} "The model `x` does not exist or you do not have access to it."
  { status: [404], body: /model_not_found|does not exist or you do not have access/i },
  // OpenAI and OpenAI-compatible hosts on a tier or project without the model.
  { status: [403, 404], body: /do(es)? not have access to (the )?model|not allowed to (sample from|use) this model/i },
  // Anthropic: 404 {"type":"not_found_error","message":"model: x"}.
  { status: [404], body: /not_found_error[\s\S]*model:/i },
  // Anthropic: 403 permission_error, a key whose organisation may not use the model it named.
  { status: [403], body: /permission_error/i },
  // Gemini: 404 NOT_FOUND "models/x is not found for API version v1beta, or is not supported for generateContent".
  { status: [404], body: /is not found for api version|is not supported for (stream)?generatecontent/i },
];

/** Whether the answer says the key cannot use the model; the pool's own rules are tried first. */
export function deniesModelAccess(report: FailureReport, poolRules: readonly ModelAccessRule[] = []): boolean {
  if (report.status === undefined || report.status < 400) return false;
  const seen = { status: report.status, body: report.body?.slice(0, MAX_ERROR_BODY) };
  return (
    poolRules.some((rule) => accessRuleMatches(rule, seen)) ||
    BUILT_IN_ACCESS_RULES.some((rule) => accessRuleMatches(rule, seen))
  );
}

function accessRuleMatches(rule: ModelAccessRule, { status, body }: FailureReport): boolean {
  if (rule.status && (status === undefined || !rule.status.includes(status))) return false;
  if (rule.body === undefined) return rule.status !== undefined;
  if (body === undefined) return false;
  return typeof rule.body === "string" ? body.toLowerCase().includes(rule.body) : rule.body.test(body);
}

/** A pool's `model_access.rules`, ready to match (already validated by the config loader). */
export function compileAccessRules(config: ModelAccessConfig | undefined): ModelAccessRule[] {
  return (config?.rules ?? []).map((rule: ModelAccessRuleConfig) => ({
    status: rule.status,
    body: rule.body === undefined ? undefined : bodyPattern(rule.body),
  }));
}
