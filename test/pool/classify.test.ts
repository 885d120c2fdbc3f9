import { describe, expect, it } from "bun:test";
import { type FailureReport, classifyFailure, compileRules } from "../../src/pool/classify";

// Error bodies as the providers send them (ids and org names shortened).
const OPENAI_QUOTA = JSON.stringify({
  error: {
    message:
      "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
    type: "insufficient_quota",
    param: null,
    code: "insufficient_quota",
  },
});
const OPENAI_RATE_LIMIT = JSON.stringify({
  error: {
    message:
      "Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000, Used 29500, Requested 1200. Please try again in 1.4s. Visit https://platform.openai.com/account/rate-limits to learn more.",
    type: "tokens",
    param: null,
    code: "rate_limit_exceeded",
  },
});
const OPENAI_BAD_KEY = JSON.stringify({
  error: {
    message:
      "Incorrect API key provided: sk-proj-****abcd. You can find your API key at https://platform.openai.com/account/api-keys.",
    type: "invalid_request_error",
    param: null,
    code: "invalid_api_key",
  },
});
const OPENAI_CONTEXT = JSON.stringify({
  error: {
    message:
      "This model's maximum context length is 128000 tokens. However, your messages resulted in 130512 tokens. Please reduce the length of the messages.",
    type: "invalid_request_error",
    param: "messages",
    code: "context_length_exceeded",
  },
});
const OPENAI_BILLING_INACTIVE = JSON.stringify({
  error: {
    message: "Your account is not active, please check your billing details on our website.",
    type: "billing_not_active",
    param: null,
    code: "billing_not_active",
  },
});
const ANTHROPIC_OVERLOADED = JSON.stringify({
  type: "error",
  error: { type: "overloaded_error", message: "Overloaded" },
});
const ANTHROPIC_AUTH = JSON.stringify({
  type: "error",
  error: { type: "authentication_error", message: "invalid x-api-key" },
});
const ANTHROPIC_RATE_LIMIT = JSON.stringify({
  type: "error",
  error: {
    type: "rate_limit_error",
    message: "This request would exceed the rate limit for your organization of 50,000 input tokens per minute.",
  },
});
const ANTHROPIC_CREDIT = JSON.stringify({
  type: "error",
  error: {
    type: "invalid_request_error",
    message:
      "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
  },
});
const ANTHROPIC_TOO_LARGE = JSON.stringify({
  type: "error",
  error: { type: "request_too_large", message: "Request exceeds the maximum allowed number of bytes." },
});
const geminiQuota = (quotaId: string) =>
  JSON.stringify({
    error: {
      code: 429,
      message:
        "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
      status: "RESOURCE_EXHAUSTED",
      details: [
        {
          "@type": "type.googleapis.com/google.rpc.QuotaFailure",
          violations: [
            { quotaMetric: "generativelanguage.googleapis.com/generate_content_free_tier_requests", quotaId },
          ],
        },
        { "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "21s" },
      ],
    },
  });
const GEMINI_PER_MINUTE = geminiQuota("GenerateRequestsPerMinutePerProjectPerModel-FreeTier");
const GEMINI_PER_DAY = geminiQuota("GenerateRequestsPerDayPerProjectPerModel-FreeTier");
const GEMINI_KEY_INVALID = JSON.stringify({
  error: {
    code: 400,
    message: "API key not valid. Please pass a valid API key.",
    status: "INVALID_ARGUMENT",
    details: [
      { "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "API_KEY_INVALID", domain: "googleapis.com" },
    ],
  },
});
const GEMINI_PERMISSION_DENIED = JSON.stringify({
  error: {
    code: 403,
    message: "Permission denied: Consumer 'api_key:AIza…' has been suspended.",
    status: "PERMISSION_DENIED",
  },
});
const DEEPSEEK_BALANCE = JSON.stringify({
  error: { message: "Insufficient Balance", type: "unknown_error", param: null, code: "invalid_request_error" },
});

describe("classifyFailure", () => {
  it.each([
    ["OpenAI insufficient_quota sent as 429", { status: 429, body: OPENAI_QUOTA }, "quota"],
    ["OpenAI billing_not_active sent as 429", { status: 429, body: OPENAI_BILLING_INACTIVE }, "quota"],
    ["OpenAI rate limit 429", { status: 429, body: OPENAI_RATE_LIMIT }, "rate_limit"],
    ["OpenAI invalid_api_key 401", { status: 401, body: OPENAI_BAD_KEY }, "auth"],
    ["OpenAI context_length_exceeded 400", { status: 400, body: OPENAI_CONTEXT }, "client"],
    ["Anthropic 529 overloaded_error", { status: 529, body: ANTHROPIC_OVERLOADED }, "overloaded"],
    ["Anthropic 401 authentication_error", { status: 401, body: ANTHROPIC_AUTH }, "auth"],
    ["Anthropic 429 rate_limit_error", { status: 429, body: ANTHROPIC_RATE_LIMIT }, "rate_limit"],
    ["Anthropic credit balance sent as 400", { status: 400, body: ANTHROPIC_CREDIT }, "quota"],
    ["Anthropic 413 request_too_large", { status: 413, body: ANTHROPIC_TOO_LARGE }, "client"],
    ["Gemini 429 RESOURCE_EXHAUSTED per minute", { status: 429, body: GEMINI_PER_MINUTE }, "rate_limit"],
    ["Gemini 429 RESOURCE_EXHAUSTED per day", { status: 429, body: GEMINI_PER_DAY }, "quota"],
    ["Gemini API key invalid sent as 400", { status: 400, body: GEMINI_KEY_INVALID }, "auth"],
    ["Gemini 403 PERMISSION_DENIED", { status: 403, body: GEMINI_PERMISSION_DENIED }, "auth"],
    ["DeepSeek 402 Insufficient Balance", { status: 402, body: DEEPSEEK_BALANCE }, "quota"],
    ["a bare 402", { status: 402 }, "quota"],
    ["a bare 429", { status: 429 }, "rate_limit"],
    ["a bare 403", { status: 403 }, "auth"],
    ["a bare 503", { status: 503, body: "<html>Service Unavailable</html>" }, "overloaded"],
    ["a bare 500", { status: 500 }, "overloaded"],
    ["408 Request Timeout", { status: 408 }, "timeout"],
    ["a bare 404", { status: 404 }, "client"],
    ["a 422 validation error", { status: 422, body: '{"detail":"field required"}' }, "client"],
    ["the gateway's first-byte timeout", { error: "no response within 60s" }, "timeout"],
    ["a refused connection", { error: "connection refused" }, "network"],
    ["a stream broken off mid-way", { error: "stream interrupted" }, "network"],
    ["a failure with nothing said about it", {}, undefined],
  ] as Array<[string, FailureReport, string | undefined]>)("%s → %s", (_, report, expected) => {
    expect(classifyFailure(report)).toBe(expected as never);
  });

  it("tries the pool's own rules first", () => {
    const rules = compileRules([
      { status: [403], body: "monthly spend limit", class: "quota" },
      { body: "/model .* is overloaded/i", class: "overloaded" },
      { status: [400], class: "rate_limit" },
    ]);
    expect(classifyFailure({ status: 403, body: '{"error":"Monthly Spend Limit reached"}' }, rules)).toBe("quota");
    expect(classifyFailure({ status: 403, body: "forbidden" }, rules)).toBe("auth");
    expect(classifyFailure({ status: 429, body: "Model gpt-x is overloaded" }, rules)).toBe("overloaded");
    expect(classifyFailure({ status: 400, body: OPENAI_CONTEXT }, rules)).toBe("rate_limit");
  });

  it("reads only the first 4 KB of a body", () => {
    const late = `${"x".repeat(5000)} insufficient_quota`;
    expect(classifyFailure({ status: 400, body: late })).toBe("client");
  });

  it("lets a status-less report be classified by its body", () => {
    expect(classifyFailure({ body: "Rate limit exceeded" })).toBe("rate_limit");
  });
});
