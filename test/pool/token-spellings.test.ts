import { describe, expect, test } from "bun:test";
import { tokenSpellings } from "../../src/pool/token-spellings";

const TOKEN = "sk-live/AbC_123+xyz";

describe("tokenSpellings", () => {
  test.each([
    ["as is", `key ${TOKEN} rejected`],
    ["URL-encoded, upper case", "key sk-live%2FAbC_123%2Bxyz rejected"],
    ["URL-encoded, lower case", "key sk-live%2fAbC_123%2bxyz rejected"],
    ["JSON-escaped slash", '"key": "sk-live\\/AbC_123+xyz"'],
    ["JSON unicode escapes", '"key": "sk\\u002dlive\\u002FAbC_123+xyz"'],
  ])("finds and replaces the token %s", (_, text) => {
    const spellings = tokenSpellings(TOKEN);
    expect(spellings.test(text)).toBe(true);
    const replaced = spellings.replace(text, "[redacted]");
    expect(replaced).toContain("[redacted]");
    expect(spellings.test(replaced)).toBe(false);
  });

  test.each([
    ["none of its runs", "content-type: application/json"],
    ["its longest run only", "AbC_123 and nothing else"],
    ["every run, but not in order", "xyz AbC 123 sk live"],
    ["the token cut short", "sk-live/AbC_123+xy"],
  ])("leaves text holding %s alone", (_, text) => {
    const spellings = tokenSpellings(TOKEN);
    expect(spellings.test(text)).toBe(false);
    expect(spellings.replace(text, "[redacted]")).toBe(text);
  });

  test("a token without letters or digits is still matched exactly", () => {
    const spellings = tokenSpellings("-_-/-");
    expect(spellings.test("a -_-/- b")).toBe(true);
    expect(spellings.test("a -_-%2F- b")).toBe(true);
    expect(spellings.test("a -_- b")).toBe(false);
  });

  test("answers the same for a token met again after many others (the cache starts over)", () => {
    const tokens = Array.from({ length: 3000 }, (_, i) => `sk-${i}-${"q".repeat(20)}`);
    for (const token of tokens) expect(tokenSpellings(token).test(`x ${token} y`)).toBe(true);
    expect(tokenSpellings(tokens[0]!).test(`x ${tokens[1]} y`)).toBe(false);
    expect(tokenSpellings(tokens[0]!).test(`x ${tokens[0]} y`)).toBe(true);
  });
});
