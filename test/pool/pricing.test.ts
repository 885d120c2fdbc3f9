import { describe, expect, it } from "bun:test";
import { parseConfig } from "../../src/config/load";
import { ConfigError } from "../../src/config/errors";
import { costMicros, priceOf } from "../../src/pool/pricing";
import { hourOf, successRate, windowStart } from "../../src/pool/usage";

const PRICES = {
  "gpt-4o-mini": { inputPerMtok: 0.15, outputPerMtok: 0.6 },
  "gpt-4o": { inputPerMtok: 2.5, outputPerMtok: 10 },
};

describe("pricing", () => {
  it("prices a model by its own entry, or a dated snapshot by its model's", () => {
    expect(priceOf(PRICES, "gpt-4o-mini")).toEqual(PRICES["gpt-4o-mini"]);
    expect(priceOf(PRICES, "gpt-4o-mini-2024-07-18")).toEqual(PRICES["gpt-4o-mini"]);
    expect(priceOf(PRICES, "gpt-4o-2024-0806")).toBeUndefined();
    expect(priceOf(PRICES, undefined)).toBeUndefined();
  });

  it("costs a token at its price per million in micro-dollars", () => {
    expect(costMicros(PRICES, "gpt-4o", { input: 1000, output: 100 })).toBe(3500);
    expect(costMicros(PRICES, "unknown", { input: 1000, output: 100 })).toBe(0);
    expect(costMicros(undefined, "gpt-4o", { input: 1000, output: 100 })).toBe(0);
  });

  it("prices cache reads and writes at their own rates when the table gives them, else as input", () => {
    const prices = { c: { inputPerMtok: 3, outputPerMtok: 15, cachedInputPerMtok: 0.3, cacheWritePerMtok: 3.75 } };
    // 1000 input, of which 600 cache reads and 200 cache writes: 200×3 + 600×0.3 + 200×3.75 + 100×15.
    expect(costMicros(prices, "c", { input: 1000, output: 100, cached: 600, cacheWrite: 200 })).toBe(3030);
    expect(costMicros(PRICES, "gpt-4o", { input: 1000, output: 100, cached: 600, cacheWrite: 200 })).toBe(3500);
    // A caller who reported more cache tokens than input is held to the input.
    expect(costMicros(prices, "c", { input: 100, output: 0, cached: 500 })).toBeCloseTo(30);
  });
});

describe("usage windows", () => {
  const at = Date.UTC(2026, 0, 1, 10, 42);
  it("counts whole hourly buckets that overlap the window", () => {
    expect(hourOf(at)).toBe(Date.UTC(2026, 0, 1, 10));
    expect(windowStart("hour", at)).toBe(Date.UTC(2026, 0, 1, 9));
    expect(windowStart("day", at)).toBe(Date.UTC(2025, 11, 31, 10));
    expect(windowStart("all", at)).toBe(0);
    expect([successRate({ requests: 0, successes: 0 }), successRate({ requests: 4, successes: 3 })]).toEqual([
      null,
      0.75,
    ]);
  });
});

describe("prices in config", () => {
  const parse = (yaml: string) => parseConfig(`tokens_file: t.txt\n${yaml}`, { baseDir: "/nonexistent", env: {} });
  const issues = (yaml: string) => {
    try {
      parse(yaml);
    } catch (error) {
      if (error instanceof ConfigError) return error.issues.filter((i) => i.startsWith("prices"));
      throw error;
    }
    return [];
  };

  it("reads a top-level table and names every mistake", () => {
    expect(issues("prices:\n  gpt-4o-mini: { input_per_mtok: 0.15, output_per_mtok: 0.6 }\n")).toEqual([]);
    expect(issues("prices:\n  m: { input_per_mtok: -1, ouput_per_mtok: 2 }\n  n: 3\n")).toEqual([
      "prices.m.input_per_mtok: expected a number of USD ≥ 0 and ≤ 1000000, got -1",
      "prices.m.ouput_per_mtok: unknown key (allowed here: input_per_mtok, output_per_mtok, cached_input_per_mtok, cache_write_per_mtok — USD per million tokens)",
      "prices.n: expected { input_per_mtok, output_per_mtok }, got 3",
    ]);
  });

  it("refuses an entry that prices nothing, which would count its model as $0 against every cap", () => {
    const fix =
      "prices nothing — give input_per_mtok and/or output_per_mtok above 0, or remove the entry (a model without one counts as unpriced, never as $0)";
    expect(issues("prices:\n  free: { input_per_mtok: 0, output_per_mtok: 0 }\n  empty: {}\n")).toEqual([
      `prices.free: ${fix}`,
      `prices.empty: ${fix}`,
    ]);
    // One side free is a real price (embeddings have no output).
    expect(issues("prices:\n  embed: { input_per_mtok: 0.02, output_per_mtok: 0 }\n")).toEqual([]);
  });
});
