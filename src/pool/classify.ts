import { type ClassifyRuleConfig, FAILURE_CLASSES, type FailureClass } from "./vocabulary";

/**
 * Failure classes: *why* a key failed, which decides what happens to it — a rate limit rests it for
 * minutes, an exhausted quota for hours, a revoked key is quarantined, and a client's own mistake
 * (a prompt too long for the model) is no fault of the key at all.
 *
 * Rules are data: a pool's own rules are tried first, then BUILT_IN_RULES, then the status alone.
 */

export type { FailureClass };
export { FAILURE_CLASSES };

/** What is known about a failure. */
export interface FailureReport {
  status?: number;
  /** The start of the error body (MAX_ERROR_BODY characters at most). */
  body?: string;
  /** A transport failure with no status, e.g. "timeout", "connection refused". */
  error?: string;
}

export interface ClassifyRule {
  status?: readonly number[];
  body?: BodyPattern;
  class: FailureClass;
}

/** A lower-cased substring (matched case-insensitively) or a regular expression. */
export type BodyPattern = string | RegExp;

/** How much of an error body classification looks at; more is cut off before it is stored or matched. */
export const MAX_ERROR_BODY = 4096;

/**
 * Provider messages that say more than the status. Order matters: the first match wins.
 * Gemini words a per-minute limit as "exceeded your current quota … PerMinute", so the
 * per-minute and per-day rules come before the quota wording they share.
 */
export const BUILT_IN_RULES: readonly ClassifyRule[] = [
  { status: [402], class: "quota" },
  // Gemini's daily free-tier limit (quotaId …PerDay…) does not end within the hour.
  { status: [429], body: /per ?day/i, class: "quota" },
  // OpenAI "Rate limit reached for … per min", Anthropic rate_limit_error, Gemini …PerMinute… and docs/rate-limits.
  { body: /rate[ _-]?limit|per ?minute|too many requests/i, class: "rate_limit" },
  // OpenAI insufficient_quota / billing_*, Anthropic "credit balance is too low", DeepSeek and OpenRouter balances.
  {
    body: /insufficient[ _](quota|balance|credits?|funds)|exceeded your current quota|quota exceeded|credit balance|billing_hard_limit|billing_not_active|account is not active|payment required/i,
    class: "quota",
  },
  // Gemini sends an invalid key as 400 INVALID_ARGUMENT (API_KEY_INVALID) or 403 PERMISSION_DENIED.
  {
    body: /api[ _]key[ _](invalid|not valid|expired)|invalid[ _]api[ _]key|incorrect api key|invalid x-api-key|authentication_error|api key has been (revoked|disabled)/i,
    class: "auth",
  },
  { status: [401, 403], class: "auth" },
  { status: [429], class: "rate_limit" },
  { status: [408], class: "timeout" },
  // Anthropic's 529 overloaded_error, and every other server-side failure.
  { status: [500, 501, 502, 503, 504, 520, 521, 522, 523, 524, 529], class: "overloaded" },
];

/**
 * The class of a failure, or undefined when there is nothing to classify (no status ≥ 400 and no
 * transport error: a caller reported a failure without saying what).
 */
export function classifyFailure(
  report: FailureReport,
  poolRules: readonly ClassifyRule[] = [],
): FailureClass | undefined {
  const { status, error } = report;
  const hasStatus = status !== undefined && status >= 400;
  if (!hasStatus && error !== undefined)
    return /time ?out|timed out|no response within/i.test(error) ? "timeout" : "network";
  const seen = { status, body: report.body?.slice(0, MAX_ERROR_BODY) };
  const matched = matchRules(seen, poolRules) ?? matchRules(seen, BUILT_IN_RULES);
  if (matched || !hasStatus) return matched;
  return status >= 500 ? "overloaded" : "client";
}

function matchRules(report: FailureReport, rules: readonly ClassifyRule[]): FailureClass | undefined {
  for (const rule of rules) if (ruleMatches(rule, report)) return rule.class;
  return undefined;
}

function ruleMatches(rule: ClassifyRule, { status, body }: FailureReport): boolean {
  if (rule.status && (status === undefined || !rule.status.includes(status))) return false;
  if (rule.body !== undefined) {
    if (body === undefined) return false;
    return typeof rule.body === "string" ? body.toLowerCase().includes(rule.body) : rule.body.test(body);
  }
  return rule.status !== undefined;
}

/** `/pattern/flags` as a RegExp; any other text as a lower-cased substring. Throws on a bad pattern. */
export function bodyPattern(text: string): BodyPattern {
  const literal = /^\/(.+)\/([a-z]*)$/s.exec(text);
  return literal ? new RegExp(literal[1]!, literal[2]) : text.toLowerCase();
}

/** A pool's configured rules, ready to match (already validated by the config loader). */
export function compileRules(rules: readonly ClassifyRuleConfig[] | undefined): ClassifyRule[] {
  return (rules ?? []).map((rule) => ({
    status: rule.status,
    body: rule.body === undefined ? undefined : bodyPattern(rule.body),
    class: rule.class,
  }));
}
