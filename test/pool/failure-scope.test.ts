import { describe, expect, it } from "bun:test";
import type { FailureReport } from "../../src/pool/classify";
import { scopeOf } from "../../src/pool/failure-scope";
import type { FailureClass, FailurePolicyConfig, FailureScope } from "../../src/pool/vocabulary";

const GEMINI_DAILY = JSON.stringify({
  error: {
    code: 429,
    message: "Quota exceeded",
    details: [{ quotaId: "GenerateRequestsPerDayPerProjectPerModel-FreeTier" }],
  },
});
const OPENAI_BILLING = '{"error":{"code":"insufficient_quota","message":"You exceeded your current quota"}}';

describe("scopeOf", () => {
  const defaults: [FailureClass, FailureReport, FailureScope][] = [
    ["rate_limit", { status: 429 }, "model"],
    ["quota", { status: 429, body: GEMINI_DAILY }, "model"],
    ["quota", { status: 429, body: OPENAI_BILLING }, "key"],
    ["quota", { status: 402 }, "key"],
    ["auth", { status: 401 }, "key"],
    ["overloaded", { status: 529 }, "model"],
    ["timeout", { error: "timeout" }, "model"],
    ["network", { error: "connection refused" }, "key"],
  ];
  it.each(defaults)("rests %s (%o) on the %s by default", (cls, report, scope) => {
    expect(scopeOf(cls, report)).toBe(scope);
  });

  const configured: [FailurePolicyConfig, FailureClass, FailureReport, FailureScope][] = [
    [{ rate_limit: { scope: "key" } }, "rate_limit", { status: 429 }, "key"],
    [{ quota: { scope: "model" } }, "quota", { status: 402 }, "model"],
    [{ quota: { scope: "key" } }, "quota", { status: 429, body: GEMINI_DAILY }, "key"],
    [{ auth: { scope: "model" } }, "auth", { status: 403 }, "model"],
    [{ network: { scope: "model" } }, "network", { error: "reset" }, "model"],
    // Another class's setting leaves this one on its default.
    [{ rate_limit: { scope: "key" } }, "overloaded", { status: 503 }, "model"],
  ];
  it.each(configured)("follows failure_policy %o for %s", (policy, cls, report, scope) => {
    expect(scopeOf(cls, report, policy)).toBe(scope);
  });
});
