import { describe, expect, it } from "bun:test";
import type { FailureReport } from "../../src/pool/classify";
import { classifyFailure } from "../../src/pool/classify";
import { compileAccessRules, deniesModelAccess } from "../../src/pool/model-access";

const OPENAI_404 = JSON.stringify({
  error: {
    message: "The model `gpt-4o` does not exist or you do not have access to it.",
    type: "invalid_request_error",
    param: null,
    code: "model_not_found",
  },
});
const OPENAI_403 =
  '{"error":{"message":"Project `proj_x` does not have access to model `o3`","code":"model_not_found"}}';
const ANTHROPIC_404 = '{"type":"error","error":{"type":"not_found_error","message":"model: claude-opus-9"}}';
const ANTHROPIC_403 = JSON.stringify({
  type: "error",
  error: { type: "permission_error", message: "Your API key does not have permission to use the specified resource." },
});
const GEMINI_404 = JSON.stringify({
  error: {
    code: 404,
    message:
      "models/gemini-9-pro is not found for API version v1beta, or is not supported for generateContent. " +
      "Call ListModels to see the list of available models and their supported methods.",
    status: "NOT_FOUND",
  },
});
const ANTHROPIC_AUTH = '{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}';

describe("deniesModelAccess", () => {
  const cases: [string, FailureReport, boolean][] = [
    ["OpenAI model_not_found", { status: 404, body: OPENAI_404 }, true],
    ["OpenAI project without the model", { status: 403, body: OPENAI_403 }, true],
    ["Anthropic not_found_error naming the model", { status: 404, body: ANTHROPIC_404 }, true],
    ["Anthropic permission_error", { status: 403, body: ANTHROPIC_403 }, true],
    ["Gemini model not found for the API version", { status: 404, body: GEMINI_404 }, true],
    ["an invalid key (auth, not access)", { status: 401, body: ANTHROPIC_AUTH }, false],
    ["a bare 403", { status: 403 }, false],
    ["a 404 for a path, not a model", { status: 404, body: '{"error":"no route"}' }, false],
    ["a rate limit", { status: 429, body: "Rate limit reached for gpt-4o" }, false],
    ["a transport failure", { error: "timeout" }, false],
    ["the wording on a success", { status: 200, body: OPENAI_404 }, false],
  ];
  it.each(cases)("%s → %p", (_, report, denied) => {
    expect(deniesModelAccess(report)).toBe(denied);
  });

  it("is not what classification calls it without a model: 403 stays auth, 404 stays client", () => {
    expect(classifyFailure({ status: 403, body: ANTHROPIC_403 })).toBe("auth");
    expect(classifyFailure({ status: 404, body: OPENAI_404 })).toBe("client");
  });

  it("tries a pool's own rules: a substring, a /regex/ and a status", () => {
    const rules = compileAccessRules({
      rules: [
        { status: [400], body: "Model Tier Not Enabled" },
        { body: "/no entitlement for .+/i" },
        { status: [451] },
      ],
    });
    expect(deniesModelAccess({ status: 400, body: "error: model tier not enabled" }, rules)).toBe(true);
    expect(deniesModelAccess({ status: 400, body: "model tier not enabled" })).toBe(false);
    expect(deniesModelAccess({ status: 422, body: "No entitlement for m-big" }, rules)).toBe(true);
    expect(deniesModelAccess({ status: 451 }, rules)).toBe(true);
    expect(deniesModelAccess({ status: 401, body: "model tier not enabled" }, rules)).toBe(false);
  });
});
