import { describe, expect, it } from "bun:test";
import { remainingQuotas } from "../../src/metrics/ratelimit-headers";

describe("remainingQuotas", () => {
  it("reads OpenAI, Anthropic and bare rate-limit headers by kind", () => {
    const headers = new Headers({
      "x-ratelimit-remaining-requests": "59",
      "x-ratelimit-remaining-tokens": "149984",
      "anthropic-ratelimit-input-tokens-remaining": "40000",
      "ratelimit-remaining": "7",
      "x-ratelimit-limit-requests": "60",
      "content-type": "application/json",
    });
    expect(remainingQuotas(headers).sort((a, b) => a.kind.localeCompare(b.kind) || a.value - b.value)).toEqual([
      { kind: "input_tokens", value: 40000 },
      { kind: "requests", value: 7 },
      { kind: "requests", value: 59 },
      { kind: "tokens", value: 149984 },
    ]);
  });

  it("skips values that are not numbers", () => {
    expect(remainingQuotas(new Headers({ "x-ratelimit-remaining-requests": "lots" }))).toEqual([]);
  });
});
