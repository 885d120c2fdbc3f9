import { describe, expect, it } from "bun:test";
import {
  MAX_COOLDOWN_MS,
  MAX_COOLDOWN_SEC,
  MAX_REMAINING,
  MAX_REQUEST_TOKENS,
  MAX_TIME_MS,
  clamp,
  clampCount,
  isoTime,
  parseDecimal,
} from "../../src/pool/bounds";
import { afterCheck, afterOutcome, afterTake, type KeyCondition, restUntil } from "../../src/pool/key-state";
import { EMPTY_WINDOWS, countTokens } from "../../src/pool/limits";
import { exhaustedUntil, parseRateLimitHeaders } from "../../src/pool/rate-limit-headers";
import { parseRetryAfter, retryAfterMs } from "../../src/pool/retry-after";
import { STORED_BOUNDS, repairStatements } from "../../src/store/stored-bounds";

const NOW = Date.UTC(2026, 11, 2);
const headers = (h: Record<string, string>) => new Headers(h);
const LIVE: KeyCondition = { health: "live", reason: null, readyAt: 0 };

describe("retryAfterMs: an upstream's wait is held to [0, 7 days]", () => {
  it.each([
    ["retry-after seconds", { "retry-after": "20" }, 20_000],
    ["retry-after 14 digits (27 billion hours)", { "retry-after": "99999999999999" }, MAX_COOLDOWN_MS],
    ["retry-after 400 digits (Infinity)", { "retry-after": "9".repeat(400) }, MAX_COOLDOWN_MS],
    ["retry-after-ms beyond 2^53", { "retry-after-ms": "99999999999999999999999" }, MAX_COOLDOWN_MS],
    ["retry-after-ms fractional", { "retry-after-ms": "1500.2" }, 1501],
    ["an HTTP date in the year 275759", { "retry-after": "Fri, 31 Dec 275759 23:59:59 GMT" }, MAX_COOLDOWN_MS],
    ["an HTTP date in the past", { "retry-after": "Thu, 01 Jan 1970 00:00:00 GMT" }, 0],
    // Not a delay: Date.parse reads it as a year long past, which means "now".
    ["a negative delay", { "retry-after": "-5" }, 0],
    ["hex", { "retry-after": "0x10" }, undefined],
    ["nothing", {}, undefined],
  ])("%s", (_, given, expected) => {
    expect(retryAfterMs(headers(given), NOW)).toBe(expected);
  });

  it("parseRetryAfter never answers more than MAX_COOLDOWN_SEC", () => {
    expect(parseRetryAfter("99999999999999", NOW)).toBe(MAX_COOLDOWN_SEC);
  });
});

describe("parseRateLimitHeaders: counts and resets are clamped", () => {
  it.each([
    ["a 40-digit remaining", { "x-ratelimit-remaining-requests": "9".repeat(40) }, { requests: MAX_REMAINING }],
    [
      "a reset of 99999999999999h",
      { "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "99999999999999h" },
      { requests: 0, requestsResetAt: NOW + MAX_COOLDOWN_MS },
    ],
    [
      "a reset of 400 digits of seconds",
      { "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "9".repeat(400) },
      { tokens: 0, tokensResetAt: NOW + MAX_COOLDOWN_MS },
    ],
    [
      "an Anthropic reset in the year 275760",
      {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "+275760-09-13T00:00:00.000Z",
      },
      { requests: 0, requestsResetAt: NOW + MAX_COOLDOWN_MS },
    ],
    [
      "an Anthropic reset before 1970",
      { "anthropic-ratelimit-requests-remaining": "3", "anthropic-ratelimit-requests-reset": "1900-01-01T00:00:00Z" },
      { requests: 3, requestsResetAt: 0 },
    ],
    [
      "an ordinary reset",
      { "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s" },
      { requests: 0, requestsResetAt: NOW + 360_000 },
    ],
  ])("%s", (_, given, expected) => {
    const budget = parseRateLimitHeaders(headers(given), NOW);
    expect(budget).toEqual(expected);
    const until = exhaustedUntil(budget, NOW);
    if (until !== undefined) expect(until).toBeLessThanOrEqual(NOW + MAX_COOLDOWN_MS);
  });
});

describe("key-state: no rest is longer than MAX_COOLDOWN_MS, whoever asked", () => {
  const policy = { cooldownSec: 0 };
  it.each([
    ["a rate limit with retryAfterMs 1e308", { ok: false, status: 429, retryAfterMs: 1e308 }],
    ["an unclassified failure with retryAfterMs Infinity", { ok: false, retryAfterMs: Infinity }],
    ["a minimum rest of 1e20", { ok: false, status: 503, minRestMs: 1e20 }],
    ["a caller's class with retryAfterMs 1e17", { ok: false, class: "quota" as const, retryAfterMs: 1e17 }],
  ])("%s", (_, outcome) => {
    const effect = afterOutcome(LIVE, outcome, policy, NOW, () => 0);
    expect(effect.readyAt).toBeLessThanOrEqual(NOW + MAX_COOLDOWN_MS);
    expect(effect.readyAt).toBeGreaterThan(NOW);
  });

  it("holds a take's cooldown, a quarantine, a probe's Retry-After and an outside rest to the same bound", () => {
    expect(afterTake(LIVE, { cooldownSec: 1e300 }, NOW).readyAt).toBe(NOW + MAX_COOLDOWN_MS);
    expect(afterOutcome(LIVE, { ok: false, status: 401 }, { cooldownSec: 0, quarantineSec: 1e300 }, NOW).readyAt).toBe(
      NOW + MAX_COOLDOWN_MS,
    );
    const checked = afterCheck(
      LIVE,
      { ok: false, status: 429, reason: "429", retryAfterSec: 1e300 },
      0,
      { cooldownSec: 0, failuresToDead: 3 },
      NOW,
    );
    expect(checked.condition.readyAt).toBe(NOW + MAX_COOLDOWN_MS);
    expect(restUntil(LIVE, Infinity, "budget", NOW).readyAt).toBe(NOW + MAX_COOLDOWN_MS);
  });

  it("counts at most MAX_REQUEST_TOKENS against tpm for one request", () => {
    expect(countTokens(EMPTY_WINDOWS, 1e308, { tpm: 10 }, NOW).windows.minuteTokens).toBe(MAX_REQUEST_TOKENS);
    expect(countTokens(EMPTY_WINDOWS, Number.NaN, {}, NOW).windows.minuteTokens).toBe(0);
  });
});

describe("parseDecimal: numbers as a person writes them", () => {
  it.each([
    ["1", 1],
    ["2.5", 2.5],
    [".5", 0.5],
    ["-3", -3],
    ["1e-3", 0.001],
    ["1E3", 1000],
    [" 7 ", 7],
    ["1e-320", 1e-320],
    ["0x10", undefined],
    ["0b1", undefined],
    ["1e999", undefined],
    ["Infinity", undefined],
    ["NaN", undefined],
    ["", undefined],
    ["1,5", undefined],
    ["12abc", undefined],
  ])("%p → %p", (text, expected) => {
    expect(parseDecimal(text)).toBe(expected);
  });
});

describe("clamp, clampCount, isoTime", () => {
  it.each([
    [Number.NaN, 0, 10, 0],
    [-0, 0, 10, 0],
    [Infinity, 0, 10, 10],
    [-Infinity, 0, 10, 0],
    [5, 0, 10, 5],
  ])("clamp(%p, %p, %p) = %p", (value, min, max, expected) => {
    expect(clamp(value, min, max)).toBe(expected);
  });

  it("clampCount gives whole numbers", () => {
    expect([clampCount(2.9, 10), clampCount(1e308, 10), clampCount(-1, 10), clampCount(Number.NaN, 10)]).toEqual([
      2, 10, 0, 0,
    ]);
  });

  it.each([
    [Number.NaN, "1970-01-01T00:00:00.000Z"],
    [-1, "1970-01-01T00:00:00.000Z"],
    [Infinity, "9999-12-31T23:59:59.999Z"],
    [1e17, "9999-12-31T23:59:59.999Z"],
    [MAX_TIME_MS, "9999-12-31T23:59:59.999Z"],
    [NOW, "2026-12-02T00:00:00.000Z"],
  ])("isoTime(%p) is %p instead of a throw", (ms, shown) => {
    expect(isoTime(ms)).toBe(shown);
  });
});

describe("stored bounds", () => {
  it("repairs every table in one statement each, naming PostgreSQL's tables with their prefix", () => {
    const sqlite = repairStatements("sqlite", NOW);
    const postgres = repairStatements("postgres", NOW);
    expect(sqlite.map((s) => s.split(" ")[1])).toEqual(Object.keys(STORED_BOUNDS));
    expect(postgres.map((s) => s.split(" ")[1])).toEqual(Object.keys(STORED_BOUNDS).map((t) => `keypool_${t}`));
    // A rest's ceiling is the longest rest from the moment the store opens.
    expect(sqlite[0]).toContain(`"ready_at" > ${NOW + MAX_COOLDOWN_MS}`);
    expect(postgres[0]).toContain(`"weight" = 'NaN'::float8`);
  });
});
