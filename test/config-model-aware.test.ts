import { describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { Issues, Section } from "../src/config/_fields";
import { type ModelAwareSettings, readModelAware } from "../src/config/_model-aware";
import { ConfigError } from "../src/config/errors";
import { parseConfig } from "../src/config/load";
import { parseTokensFile } from "../src/config/tokens-file";
import { tempDir } from "./helpers/temp-dir";

const TOKEN = "sk-canary-model-aware-0000000000001";
const MODELS_FIX = "write models=NAME|NAME with the names the provider uses, e.g. models=gpt-4o|gpt-4o-mini";

function configIssues(yaml: string, tokens = `a,${TOKEN}\n`): string[] {
  using dir = tempDir();
  writeFileSync(dir.file("tokens.txt"), tokens);
  try {
    parseConfig(`tokens_file: ${dir.file("tokens.txt")}\nstate_file: ':memory:'\n${yaml}`, {
      baseDir: dir.path,
      env: {},
    });
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  throw new Error("expected a ConfigError, but the config loaded");
}

function read(yaml: string): { settings: ModelAwareSettings; issues: string[] } {
  const issues = new Issues();
  const s = new Section(parseYaml(yaml) ?? {}, "pools.p", issues);
  const settings = readModelAware(s);
  return { settings, issues: issues.all };
}

function tokenIssues(line: string): string[] {
  try {
    parseTokensFile(line, "keys.txt");
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("model-aware settings in a config file", () => {
  it("loads every model-aware key of a pool, and models= in its tokens file", () => {
    using dir = tempDir();
    writeFileSync(dir.file("tokens.txt"), `a,${TOKEN},1,models=gpt-4o|gpt-4o-mini\n`);
    const config = parseConfig(
      [
        `tokens_file: ${dir.file("tokens.txt")}`,
        "state_file: ':memory:'",
        "failure_policy:\n  rate_limit: { scope: key }",
        "model_access: { rest_sec: 600 }",
        'model_limits: { "gpt-4o": { rpm: 500 } }',
      ].join("\n"),
      { baseDir: dir.path, env: {} },
    );
    const pool = config.pools.default!;
    expect(pool.failurePolicy).toEqual({ rate_limit: { scope: "key" } });
    expect(pool.modelAccess).toEqual({ restSec: 600 });
    expect(pool.modelLimits).toEqual({ "gpt-4o": { rpm: 500 } });
    expect(pool.keys[0]?.models).toEqual(["gpt-4o", "gpt-4o-mini"]);
  });

  it("names the field and the fix for a bad scope, without quoting a token", () => {
    const issues = configIssues("failure_policy:\n  rate_limit: { scope: pair }", `a,${TOKEN},1,models=a||b\n`);
    expect(issues.join("\n")).toContain("failure_policy.rate_limit.scope");
    expect(issues.join("\n")).toContain("tokens.txt:1: model 2 of models= is not a model name");
    expect(issues.join("\n")).not.toContain(TOKEN);
  });
});

describe("failure_policy", () => {
  it("reads each class's scope", () => {
    const yaml = "failure_policy:\n  rate_limit: { scope: key }\n  quota: { scope: model }\n  auth: { scope: model }";
    expect(read(yaml)).toEqual({
      settings: {
        failurePolicy: { rate_limit: { scope: "key" }, quota: { scope: "model" }, auth: { scope: "model" } },
      },
      issues: [],
    });
  });

  const bad: [string, string, string][] = [
    [
      "a scope that is neither",
      "failure_policy:\n  rate_limit: { scope: pair }",
      'pools.p.failure_policy.rate_limit.scope: "pair" is not one of model, key',
    ],
    [
      "a class without scope",
      "failure_policy:\n  quota: {}",
      "pools.p.failure_policy.quota.scope: required — model (rest the key for that model only) " +
        "or key (rest the key for every model)",
    ],
    [
      "the client class",
      "failure_policy:\n  client: { scope: key }",
      "pools.p.failure_policy.client: has no scope: a client error never rests the key or a model — remove it",
    ],
    [
      "an unknown class",
      "failure_policy:\n  rate_limits: { scope: key }",
      'pools.p.failure_policy.rate_limits: unknown key (did you mean "rate_limit"?)',
    ],
    [
      "an unknown field",
      "failure_policy:\n  timeout: { scope: key, rest: 5 }",
      "pools.p.failure_policy.timeout.rest: unknown key",
    ],
    ["a list", "failure_policy: [rate_limit]", "pools.p.failure_policy: expected a mapping of settings, got a list"],
  ];
  it.each(bad)("refuses %s", (_, yaml, issue) => {
    expect(read(yaml).issues.join("\n")).toContain(issue);
  });
});

describe("model_access", () => {
  it("reads the rest and the rules", () => {
    const yaml = [
      "model_access:",
      "  rest_sec: 3600",
      "  rules:",
      '    - { status: 400, body: "tier not enabled" }',
      '    - { body: "/no entitlement/i" }',
    ].join("\n");
    expect(read(yaml)).toEqual({
      settings: {
        modelAccess: {
          restSec: 3600,
          rules: [{ status: [400], body: "tier not enabled" }, { body: "/no entitlement/i" }],
        },
      },
      issues: [],
    });
  });

  const bad: [string, string, string][] = [
    [
      "a rule with neither field",
      "model_access:\n  rules: [{}]",
      "pools.p.model_access.rules.0: needs status or body (or both)",
    ],
    [
      "a rule with a class",
      "model_access:\n  rules: [{ status: 404, class: auth }]",
      "pools.p.model_access.rules.0.class: a model_access rule has no class",
    ],
    [
      "a bad regex",
      'model_access:\n  rules: [{ body: "/(/" }]',
      "pools.p.model_access.rules.0.body: is not a valid regular expression",
    ],
    [
      "a bad status",
      "model_access:\n  rules: [{ status: 99 }]",
      "pools.p.model_access.rules.0.status: expected an HTTP status",
    ],
    [
      "a rest of zero",
      "model_access: { rest_sec: 0 }",
      "pools.p.model_access.rest_sec: expected a number of seconds > 0 and ≤ 604800, got 0",
    ],
    [
      "a rest over a week",
      "model_access: { rest_sec: 604801 }",
      "pools.p.model_access.rest_sec: expected a number of seconds > 0 and ≤ 604800",
    ],
    [
      "rules that are not a list",
      "model_access: { rules: 404 }",
      "pools.p.model_access.rules: expected a list of rules",
    ],
    [
      "too many rules",
      `model_access:\n  rules: [${Array(101).fill("{ status: 404 }").join(", ")}]`,
      "pools.p.model_access.rules: has 101 rules; at most 100",
    ],
  ];
  it.each(bad)("refuses %s", (_, yaml, issue) => {
    expect(read(yaml).issues.join("\n")).toContain(issue);
  });
});

describe("model_limits", () => {
  it("reads rpm and tpm per model", () => {
    const yaml = 'model_limits:\n  "gpt-4o": { rpm: 500, tpm: 30000 }\n  "openai/gpt-4o-mini": { tpm: 200000 }';
    expect(read(yaml)).toEqual({
      settings: { modelLimits: { "gpt-4o": { rpm: 500, tpm: 30_000 }, "openai/gpt-4o-mini": { tpm: 200_000 } } },
      issues: [],
    });
  });

  const bad: [string, string, string][] = [
    [
      "a model without limits",
      'model_limits: { "gpt-4o": {} }',
      "pools.p.model_limits.gpt-4o: needs rpm or tpm (or both) — or remove the model",
    ],
    [
      "a zero rpm",
      'model_limits: { "gpt-4o": { rpm: 0 } }',
      "pools.p.model_limits.gpt-4o.rpm: expected a whole number of requests ≥ 1 and ≤ 1000000000, got 0",
    ],
    [
      "a fractional tpm",
      'model_limits: { "gpt-4o": { tpm: 1.5 } }',
      "pools.p.model_limits.gpt-4o.tpm: expected a whole number of tokens",
    ],
    ["a huge rpm", 'model_limits: { "gpt-4o": { rpm: 1e12 } }', "≤ 1000000000"],
    [
      "a name no provider uses",
      'model_limits: { "gpt 4o": { rpm: 1 } }',
      "pools.p.model_limits.gpt 4o: is not a model name",
    ],
    ["an unknown limit", 'model_limits: { "gpt-4o": { rpd: 1 } }', "pools.p.model_limits.gpt-4o.rpd: unknown key"],
    [
      "a number instead of limits",
      'model_limits: { "gpt-4o": 500 }',
      "pools.p.model_limits.gpt-4o: expected { rpm, tpm }",
    ],
    ["a list", "model_limits: [gpt-4o]", "pools.p.model_limits: expected a mapping of model names to limits"],
  ];
  it.each(bad)("refuses %s", (_, yaml, issue) => {
    expect(read(yaml).issues.join("\n")).toContain(issue);
  });
});

describe("models= in the tokens file", () => {
  it("restricts a key to the models it lists", () => {
    expect(parseTokensFile(`a,${TOKEN},1,group=g,models=gpt-4o| gpt-4o-mini`, "keys.txt")).toEqual([
      { id: "a", token: TOKEN, weight: 1, group: "g", models: ["gpt-4o", "gpt-4o-mini"] },
    ]);
  });

  const bad: [string, string][] = [
    ["empty", `keys.txt:1: models= is empty — ${MODELS_FIX}, or remove it`],
    ["gpt-4o||x", `keys.txt:1: model 2 of models= is not a model name — ${MODELS_FIX}`],
    ["gpt-4o|gpt-4o", "keys.txt:1: model 2 of models= is listed twice — remove one"],
    [`gpt-4o|${TOKEN} x`, `keys.txt:1: model 2 of models= is not a model name — ${MODELS_FIX}`],
    [Array.from({ length: 1001 }, (_, i) => `m${i}`).join("|"), "keys.txt:1: models= lists 1001 models; at most 1000"],
  ];
  it.each(bad)("refuses models=%s, naming the place and never the token", (models, issue) => {
    const issues = tokenIssues(`a,${TOKEN},1,models=${models === "empty" ? "" : models}`);
    expect(issues).toEqual([issue]);
    expect(issues.join("\n")).not.toContain(TOKEN);
  });
});
