import { describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { ConfigError } from "../src/config/errors";
import { parseConfig } from "../src/config/load";
import { poolSettingsOf } from "../src/daemon/pool-settings";
import { DEFAULT_LADDERS } from "../src/pool/backoff";
import { tempDir } from "./helpers/temp-dir";

const TOKENS = "a,sk-test-aaaaaaaaaaaaaaaa0001,1,group=acme\nb,sk-test-bbbbbbbbbbbbbbbb0002\n";

function parse(yaml: string) {
  using dir = tempDir();
  writeFileSync(dir.file("tokens.txt"), TOKENS);
  return parseConfig(`tokens_file: ${dir.file("tokens.txt")}\nstate_file: ':memory:'\n${yaml}`, {
    baseDir: dir.path,
    env: {},
  });
}

function issuesOf(yaml: string): string[] {
  try {
    parse(yaml);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  throw new Error("expected a ConfigError, but the config loaded");
}

describe("failure policy config", () => {
  it("reads classify rules, ladders, limits and the new rotations", () => {
    const config = parse(
      [
        "rotation: most_remaining",
        "rpm: 60",
        "tpm: 90000",
        "daily_requests: 10000",
        "classify:",
        "  - { status: 403, body: monthly spend limit, class: quota }",
        '  - { body: "/model .* overloaded/i", class: overloaded }',
        "  - { status: [400, 422], class: client }",
        "backoff:",
        "  rate_limit: { base_sec: 30, factor: 3, max_sec: 900 }",
        "  overloaded: { step_sec: 10 }",
      ].join("\n"),
    );
    const pool = config.pools.default!;
    expect(pool).toMatchObject({
      rotation: "most_remaining",
      rpm: 60,
      tpm: 90_000,
      dailyRequests: 10_000,
      classify: [
        { status: [403], body: "monthly spend limit", class: "quota" },
        { body: "/model .* overloaded/i", class: "overloaded" },
        { status: [400, 422], class: "client" },
      ],
      backoff: { rate_limit: { baseSec: 30, factor: 3, maxSec: 900 }, overloaded: { stepSec: 10 } },
    });
    expect(pool.keys.map((k) => k.group)).toEqual(["acme", undefined]);
    const settings = poolSettingsOf(pool);
    expect(settings.ladders).toEqual({
      ...DEFAULT_LADDERS,
      rate_limit: { baseSec: 30, factor: 3, maxSec: 900 },
      overloaded: { baseSec: 30, stepSec: 10, maxSec: 300 },
    });
    expect(settings.classify![1]!.body).toBeInstanceOf(RegExp);
  });

  it("accepts least_busy", () => {
    expect(parse("rotation: least_busy").pools.default!.rotation).toBe("least_busy");
  });

  it("names every mistake in rules and ladders by its path", () => {
    const issues = issuesOf(
      [
        "rpm: 0",
        "daily_requests: 1.5",
        "classify:",
        "  - { status: 429 }",
        "  - { class: quota }",
        "  - { body: '/(unclosed/', class: quota }",
        "  - { status: 42, class: sideways }",
        "  - just a string",
        "backoff:",
        "  rate_limit: { factor: 2, step_sec: 5 }",
        "  quota: { base_sec: 600, max_sec: 60 }",
        "  overloaded: { base: 5 }",
        "  auth: { base_sec: 1 }",
      ].join("\n"),
    );
    expect(issues).toEqual([
      "rpm: expected a whole number of requests ≥ 1 and ≤ 1000000000, got 0",
      "daily_requests: expected a whole number of requests ≥ 1 and ≤ 1000000000, got 1.5",
      "classify.0.class: required — one of rate_limit, quota, auth, overloaded, timeout, network, client",
      "classify.1: needs status or body (or both) — a rule with neither would match every failure",
      "classify.2.body: is not a valid regular expression (Invalid regular expression: missing )) — fix it, or write a plain substring",
      'classify.3.class: "sideways" is not one of rate_limit, quota, auth, overloaded, timeout, network, client',
      "classify.3.status: expected an HTTP status (100–599) or a list of them, got 42",
      'classify.4: expected a rule with class and a status and/or body, e.g. - { status: 403, body: "quota", class: quota }',
      "backoff.rate_limit: has both factor and step_sec — a ladder grows by a factor (exponential) or by a step (linear); keep one",
      "backoff.quota.max_sec: must be at least base_sec (600)",
      "backoff.overloaded.base: unknown key (allowed here: base_sec, factor, max_sec, step_sec)",
      "backoff.auth: auth has no ladder: an auth failure quarantines the key until a probe revives it (or upstream.quarantine_sec without a check)",
    ]);
  });

  it("rejects a classify that is not a list", () => {
    expect(issuesOf("classify: { status: 429, class: quota }")).toEqual([
      'classify: expected a list of rules, e.g. - { status: 403, body: "quota", class: quota }',
    ]);
  });

  it("takes pool defaults from the top level next to pools:", () => {
    using dir = tempDir();
    writeFileSync(dir.file("t.txt"), TOKENS);
    const config = parseConfig(
      `state_file: ':memory:'\nrpm: 5\nbackoff: { quota: { max_sec: 7200 } }\npools:\n  one: { tokens_file: t.txt }\n  two: { tokens_file: t.txt, rpm: 7 }\n`,
      { baseDir: dir.path, env: {} },
    );
    expect([config.pools.one!.rpm, config.pools.two!.rpm, config.pools.two!.backoff]).toEqual([
      5,
      7,
      { quota: { maxSec: 7200 } },
    ]);
  });
});
