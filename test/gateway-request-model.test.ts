import { describe, expect, it } from "bun:test";
import type { UpstreamConfig } from "../src/config/types";
import { modelInPath, modelsByPool, requestModel } from "../src/gateway/request-model";
import { buildRoute } from "../src/gateway/route";

describe("modelInPath", () => {
  const cases: [string, string | undefined][] = [
    ["/v1beta/models/gemini-2.0-flash:generateContent", "gemini-2.0-flash"],
    ["/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", "gemini-2.0-flash"],
    ["/gemini/v1/models/gemini-1.5-pro-002:countTokens", "gemini-1.5-pro-002"],
    ["/v1beta/models/text-embedding-004:embedContent", "text-embedding-004"],
    ["/v1beta/models/text-embedding-004:batchEmbedContents", "text-embedding-004"],
    ["/v1beta/tunedModels/my-tuned-1:generateContent", "my-tuned-1"],
    [
      "/v1/projects/p1/locations/us-central1/publishers/google/models/gemini-2.0-flash-001:streamGenerateContent",
      "gemini-2.0-flash-001",
    ],
    ["/v1beta/models/claude%403:generateContent", "claude@3"],
    // Not a call of a model: listing, getting, another verb, an OpenAI path.
    ["/v1beta/models", undefined],
    ["/v1beta/models/gemini-2.0-flash", undefined],
    ["/v1beta/models/gemini-2.0-flash:predictLongRunning", undefined],
    ["/v1beta/models/gemini:generateContentX", undefined],
    ["/v1/chat/completions", undefined],
    // Not shaped like a model name: never a pair in the store.
    ["/v1beta/models/%ZZ:generateContent", undefined],
    ["/v1beta/models/a%20b:generateContent", undefined],
    ["/v1beta/models/a%2Cb:generateContent", undefined],
    [`/v1beta/models/${"m".repeat(257)}:generateContent`, undefined],
  ];
  it.each(cases)("%s → %p", (path, model) => {
    expect(modelInPath(path)).toBe(model);
  });
});

describe("requestModel", () => {
  const cases: [string, string, Record<string, unknown> | undefined, string | undefined][] = [
    ["the body's model", "/v1/chat/completions", { model: "gpt-4o" }, "gpt-4o"],
    [
      "the path's model over the body's",
      "/v1beta/models/gemini-2.0-flash:generateContent",
      { model: "x" },
      "gemini-2.0-flash",
    ],
    ["no model anywhere", "/v1/embeddings", { input: "hi" }, undefined],
    ["no body", "/v1/models", undefined, undefined],
    ["a body model that is not a string", "/v1/chat/completions", { model: 4 }, undefined],
    ["a body model no provider would name", "/v1/chat/completions", { model: "gpt 4o, please" }, undefined],
    // A key sent where the model goes would be stored and shown: shapes of credentials are not models.
    ["a body model shaped like a key", "/v1/chat/completions", { model: "sk-proj-a1b2c3d4e5f6g7h8" }, undefined],
    ["a body model that is a JWT", "/v1/chat/completions", { model: "eyJhbGciOi.eyJzdWIiOi.sig" }, undefined],
    ["a long run of letters and digits", "/v1/chat/completions", { model: "a1".repeat(20) }, undefined],
    [
      "a long but real model name",
      "/v1/chat/completions",
      { model: "anthropic.claude-3-5-sonnet-20240620-v1:0" },
      "anthropic.claude-3-5-sonnet-20240620-v1:0",
    ],
    [
      "a fine-tuned model",
      "/v1/chat/completions",
      { model: "ft:gpt-4o-mini-2024-07-18:org:name:9fAbC1x" },
      "ft:gpt-4o-mini-2024-07-18:org:name:9fAbC1x",
    ],
  ];
  it.each(cases)("takes %s", (_, path, json, model) => {
    expect(requestModel(path, json)).toBe(model);
  });
});

describe("modelsByPool", () => {
  // Only the model maps matter here; the upstream is never called.
  const upstream = {} as UpstreamConfig;
  const route = buildRoute("openai", upstream, {
    fallbacks: [
      { pool: "azure", upstream, modelMap: { "gpt-4o": "my-gpt-4o" } },
      { pool: "odd", upstream, modelMap: { "gpt-4o": "not a model" } },
    ],
  });

  it("asks each pool for the body's model by that pool's own name (what bodyFor sends it)", () => {
    const modelIn = modelsByPool(route, "/v1/chat/completions", { model: "gpt-4o" })!;
    expect(["openai", "azure", "odd"].map(modelIn)).toEqual(["gpt-4o", "my-gpt-4o", undefined]);
  });

  it("asks every pool for the path's model as it is: the upstream routes by the path", () => {
    const modelIn = modelsByPool(route, "/v1beta/models/gemini-2.0-flash:generateContent", { model: "gpt-4o" })!;
    expect(["openai", "azure"].map(modelIn)).toEqual(["gemini-2.0-flash", "gemini-2.0-flash"]);
  });

  it("has nothing to ask when the request names no model, or none shaped like one", () => {
    expect(modelsByPool(route, "/v1/embeddings", { input: "hi" })).toBeUndefined();
    expect(modelsByPool(route, "/v1/chat/completions", { model: "m".repeat(300) })).toBeUndefined();
    expect(modelsByPool(route, "/v1/chat/completions", undefined)).toBeUndefined();
  });
});
