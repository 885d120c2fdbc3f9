import { describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { ConfigError } from "../src/config/errors";
import { fallbackChain, fallbackCycle } from "../src/config/fallback";
import { parseConfig } from "../src/config/load";
import { DEFAULT_SESSION } from "../src/config/types";
import { poolSettingsOf } from "../src/daemon/pool-settings";
import { tempDir } from "./helpers/temp-dir";

const TOKENS = "a,sk-test-aaaaaaaaaaaaaaaa0001\n";

/** `yaml` with every `TOKENS_FILE` replaced by a valid tokens file's path. */
function parse(yaml: string) {
  using dir = tempDir();
  writeFileSync(dir.file("tokens.txt"), TOKENS);
  return parseConfig(`state_file: ':memory:'\n${yaml.replaceAll("TOKENS_FILE", dir.file("tokens.txt"))}`, {
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

/** Pools a, b, c, … with the given `fallback:` lines. */
function pools(fallbacks: Record<string, string>): string {
  return [
    "pools:",
    ...Object.entries(fallbacks).map(
      ([name, fallback]) => `  ${name}: { tokens_file: TOKENS_FILE${fallback ? `, fallback: ${fallback}` : ""} }`,
    ),
  ].join("\n");
}

describe("fallbackCycle", () => {
  it.each([
    [{ a: ["b"], b: ["c"], c: [] }, undefined],
    [{ a: ["a"] }, ["a", "a"]],
    [{ a: ["b"], b: ["a"] }, ["a", "b", "a"]],
    [{ a: ["b", "c"], b: ["d"], c: ["d"], d: [] }, undefined],
    [{ x: [], a: ["b"], b: ["c"], c: ["b"] }, ["b", "c", "b"]],
  ])("in %j finds %j", (graph, cycle) => {
    expect(fallbackCycle(graph)).toEqual(cycle);
  });
});

describe("fallbackChain", () => {
  it("lists the pool, then each fallback followed by its own fallbacks, each pool once", () => {
    const graph = { a: ["b", "d"], b: ["c", "d"], c: [], d: [] };
    expect([fallbackChain(graph, "a"), fallbackChain(graph, "b"), fallbackChain(graph, "c")]).toEqual([
      ["a", "b", "c", "d"],
      ["b", "c", "d"],
      ["c"],
    ]);
  });
});

describe("routing config", () => {
  it("reads session, fallback, model_map and upstream.queue_timeout_sec", () => {
    const config = parse(
      [
        "pools:",
        "  openai:",
        "    tokens_file: TOKENS_FILE",
        "    session: { header: X-Conversation, ttl_sec: 600, max: 500, fingerprint: false }",
        "    fallback: [claude]",
        "    upstream: { base_url: https://api.openai.com, queue_timeout_sec: 5 }",
        "  claude:",
        "    tokens_file: TOKENS_FILE",
        "    model_map: { gpt-4o: claude-sonnet-4 }",
      ].join("\n"),
    );
    const { openai, claude } = config.pools;
    expect([
      openai!.session,
      openai!.fallback,
      openai!.upstream!.queueTimeoutSec,
      claude!.modelMap,
      claude!.session,
      claude!.fallback,
    ]).toEqual([
      { enabled: true, header: "x-conversation", ttlSec: 600, max: 500, fingerprint: false },
      ["claude"],
      5,
      { "gpt-4o": "claude-sonnet-4" },
      undefined,
      undefined,
    ]);
    expect(poolSettingsOf(openai!)).toMatchObject({ sessionTtlSec: 600, maxSessions: 500 });
    expect(DEFAULT_SESSION).toEqual({
      enabled: true,
      header: "x-session-id",
      fingerprint: true,
      ttlSec: 3600,
      max: 100_000,
    });
  });

  it("lets pools inherit a top-level session, but not a top-level fallback or model_map", () => {
    const config = parse(
      "session: { ttl_sec: 60 }\npools:\n  a: { tokens_file: TOKENS_FILE }\n  b: { tokens_file: TOKENS_FILE }\n",
    );
    expect([config.pools.a!.session?.ttlSec, config.pools.b!.session?.ttlSec]).toEqual([60, 60]);
    expect(
      issuesOf(
        "fallback: [b]\nmodel_map: { x: y }\npools:\n  a: { tokens_file: TOKENS_FILE }\n  b: { tokens_file: TOKENS_FILE }\n",
      ),
    ).toEqual([
      "fallback: is set per pool, not as a default for every pool — move it under the pools that need it (pools.NAME.fallback)",
      "model_map: is set per pool, not as a default for every pool — move it under the pools that need it (pools.NAME.model_map)",
    ]);
  });

  it("names a fallback that is not a pool", () => {
    expect(issuesOf(pools({ a: "[b, nope]", b: "" }))).toEqual([
      'pools.a.fallback.1: "nope" is not a pool (pools: a, b) — name one of them, or remove it',
    ]);
    expect(issuesOf("tokens_file: TOKENS_FILE\nfallback: other\n")).toEqual([
      'fallback.0: "other" is not a pool (pools: default) — name one of them, or remove it',
    ]);
  });

  it("rejects a fallback cycle, naming its path", () => {
    const why = "a pool cannot fall back to itself, even through other pools; remove one of these fallbacks";
    expect(issuesOf(pools({ a: "[b]", b: "[c]", c: "[a]" }))).toEqual([
      `pools.a.fallback: fallback cycle a → b → c → a — ${why}`,
    ]);
    expect(issuesOf(pools({ a: "[a]" }))).toEqual([`pools.a.fallback: fallback cycle a → a — ${why}`]);
  });

  it("names bad session settings and a bad queue timeout", () => {
    expect(
      issuesOf(
        "tokens_file: TOKENS_FILE\nsession: { header: 'x session', ttl_sec: 0, max: 0, sticky: true }\nupstream: { queue_timeout_sec: -1 }\n",
      ),
    ).toEqual([
      "upstream.queue_timeout_sec: expected a number of seconds ≥ 0 and ≤ 604800, got -1",
      'session.header: "x session" is not a header name — write e.g. x-session-id',
      "session.ttl_sec: expected a number of seconds > 0 and ≤ 604800, got 0",
      "session.max: expected a whole number of sessions ≥ 1 and ≤ 10000000, got 0",
      "session.sticky: unknown key (allowed here: enabled, fingerprint, header, max, ttl_sec)",
    ]);
  });
});
