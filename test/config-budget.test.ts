import { describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { ConfigError } from "../src/config/errors";
import { parseConfig } from "../src/config/load";
import { parseTokensFile } from "../src/config/tokens-file";
import { tempDir } from "./helpers/temp-dir";

const TOKEN = "sk-canary-budget-000000000000000001";

function load(yaml: string, tokens = `a,${TOKEN}\n`) {
  using dir = tempDir();
  writeFileSync(dir.file("tokens.txt"), tokens);
  return parseConfig(`tokens_file: ${dir.file("tokens.txt")}\nstate_file: ':memory:'\n${yaml}`, {
    baseDir: dir.path,
    env: {},
  });
}

function issues(yaml: string, tokens?: string): string[] {
  try {
    load(yaml, tokens);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("budget: in the config", () => {
  it("reads a pool's caps in USD as micro-dollars per UTC day and month", () => {
    expect(load("budget: { day: 10, month: 200.5 }").pools.default!.budget).toEqual({
      dayMicros: 10_000_000,
      monthMicros: 200_500_000,
    });
    expect(load("budget: { month: 0.001 }").pools.default!.budget).toEqual({ monthMicros: 1000 });
  });

  const bad: [string, string][] = [
    ["budget: { day: 0 }", "budget.day: expected a number of USD > 0 and ≤ 1000000000, got 0"],
    ["budget: { day: -1 }", "budget.day: expected a number of USD > 0 and ≤ 1000000000, got -1"],
    ["budget: { day: 1e12 }", "budget.day: expected a number of USD > 0 and ≤ 1000000000"],
    ["budget: { day: .inf }", "budget.day: expected a number of USD > 0"],
    ['budget: { day: "ten" }', 'budget.day: expected a number of USD > 0 and ≤ 1000000000, got "ten"'],
    ["budget: {}", "budget: needs day or month (or both), in USD — e.g. budget: { day: 10, month: 200 }"],
    ["budget: { week: 3 }", "budget.week"],
  ];
  it.each(bad)("refuses %s, naming the field", (yaml, issue) => {
    expect(issues(yaml).join("\n")).toContain(issue);
  });
});

describe("budget_day= and budget_month= in the tokens file", () => {
  it("gives a key its own caps", () => {
    expect(parseTokensFile(`a,${TOKEN},1,budget_day=10.00,budget_month=150`, "keys.txt")).toEqual([
      { id: "a", token: TOKEN, weight: 1, budget: { dayMicros: 10_000_000, monthMicros: 150_000_000 } },
    ]);
  });

  it.each(["0", "-1", "ten", "1e3", "", "2000000000"])("refuses budget_day=%s without quoting the token", (v) => {
    const found = issues("", `a,${TOKEN},1,budget_day=${v}\n`).join("\n");
    expect(found).toContain(
      "tokens.txt:1: budget_day= needs an amount of USD > 0 and ≤ 1000000000, e.g. budget_day=10.00",
    );
    expect(found).not.toContain(TOKEN);
  });
});
