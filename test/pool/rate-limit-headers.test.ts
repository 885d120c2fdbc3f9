import { describe, expect, it } from "bun:test";
import { exhaustedUntil, fullAt, parseDuration, parseRateLimitHeaders } from "../../src/pool/rate-limit-headers";

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);

describe("parseDuration", () => {
  it.each([
    ["20ms", 20],
    ["1s", 1000],
    ["0.5s", 500],
    ["6m0s", 360_000],
    ["1h2m3.5s", 3_723_500],
    ["17", 17_000],
  ])("reads %s as %i ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(["", "soon", "1x", "-1s"])("rejects %p", (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe("parseRateLimitHeaders", () => {
  it("reads OpenAI's remaining budgets and duration resets", () => {
    const headers = new Headers({
      "x-ratelimit-limit-requests": "10000",
      "x-ratelimit-remaining-requests": "9998",
      "x-ratelimit-reset-requests": "17ms",
      "x-ratelimit-limit-tokens": "2000000",
      "x-ratelimit-remaining-tokens": "1999455",
      "x-ratelimit-reset-tokens": "6m0s",
    });
    expect(parseRateLimitHeaders(headers, NOW)).toEqual({
      requests: 9998,
      tokens: 1_999_455,
      requestsResetAt: NOW + 17,
      tokensResetAt: NOW + 360_000,
    });
  });

  it("reads Anthropic's budgets, taking the scarcest token budget, with RFC 3339 resets", () => {
    const headers = new Headers({
      "anthropic-ratelimit-requests-remaining": "49",
      "anthropic-ratelimit-requests-reset": "2026-01-01T12:00:01Z",
      "anthropic-ratelimit-tokens-remaining": "38000",
      "anthropic-ratelimit-tokens-reset": "2026-01-01T12:00:30Z",
      "anthropic-ratelimit-input-tokens-remaining": "30000",
      "anthropic-ratelimit-input-tokens-reset": "2026-01-01T12:00:20Z",
      "anthropic-ratelimit-output-tokens-remaining": "8000",
      "anthropic-ratelimit-output-tokens-reset": "2026-01-01T12:00:05Z",
    });
    expect(parseRateLimitHeaders(headers, NOW)).toEqual({
      requests: 49,
      tokens: 8000,
      requestsResetAt: NOW + 1000,
      tokensResetAt: NOW + 5000,
    });
  });

  it("says nothing when there are no rate-limit headers, or only unreadable ones", () => {
    expect(parseRateLimitHeaders(new Headers({ "content-type": "application/json" }), NOW)).toBeUndefined();
    expect(parseRateLimitHeaders(new Headers({ "x-ratelimit-remaining-requests": "lots" }), NOW)).toBeUndefined();
  });
});

describe("exhaustedUntil", () => {
  it("is the reset of the budget that ran out, the later one when both did", () => {
    expect(
      exhaustedUntil({ requests: 0, requestsResetAt: NOW + 5000, tokens: 10, tokensResetAt: NOW + 9000 }, NOW),
    ).toBe(NOW + 5000);
    expect(
      exhaustedUntil({ requests: 0, requestsResetAt: NOW + 5000, tokens: 0, tokensResetAt: NOW + 9000 }, NOW),
    ).toBe(NOW + 9000);
  });

  it("is undefined while budget is left, when the reset is unknown or already past", () => {
    expect(exhaustedUntil({ requests: 3, requestsResetAt: NOW + 5000 }, NOW)).toBeUndefined();
    expect(exhaustedUntil({ requests: 0 }, NOW)).toBeUndefined();
    expect(exhaustedUntil({ requests: 0, requestsResetAt: NOW - 1 }, NOW)).toBeUndefined();
  });

  it("shows the budget full again at the later reset", () => {
    expect(fullAt({ requestsResetAt: NOW + 1, tokensResetAt: NOW + 2 })).toBe(NOW + 2);
  });
});
