/**
 * Scenario 11: the config loader and the tokens file parser fed random, truncated and mistyped
 * input from a seeded generator (the same cases every run; a failure prints its seed and input).
 * Every case must end in a complete Config or a ConfigError whose issues are sentences — never
 * another exception, never a token echoed — and a daemon reloading such a file either applies all
 * of it or keeps everything it had: never a partial pool.
 */
import { describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import YAML from "yaml";
import { ConfigError } from "../../src/config/errors";
import { parseConfig } from "../../src/config/load";
import { parseTokensFile } from "../../src/config/tokens-file";
import { ROTATIONS, type Config } from "../../src/config/types";
import { DomainError } from "../../src/pool/errors";
import { startTestDaemon } from "../helpers/daemon";
import { tempDir } from "../helpers/temp-dir";
import { canary } from "./_canary";

const SEED = 0x6b6579; // "key"
const CASES = 300;
const LEAK = canary("fuzz");

/** mulberry32: small, fast and good enough to pick mutations. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(list: readonly T[]) => list[Math.floor(next() * list.length)]!,
  };
}
type Rng = ReturnType<typeof prng>;

const VALID_CONFIG = `# a config that loads
state_file: state.db
server:
  addr: 127.0.0.1:0
  api_key: admin-secret-0123456789
cooldown_sec: 5
rotation: lru
pools:
  openai:
    tokens_file: a.txt
    max_concurrency: 4
    upstream:
      enabled: true
      listen: 127.0.0.1:0
      base_url: https://api.openai.com
      max_retries: 2
      retry_budget: 0.2
      timeout_sec: 30
    check:
      url: https://api.openai.com/v1/models
      headers:
        Authorization: Bearer {token}
  anthropic:
    tokens_file: b.txt
    rotation: weighted
    fallback: [openai]
    backoff:
      rate_limit: { base_sec: 10, factor: 2, max_sec: 600 }
    classify:
      - { status: [400], body: credit, class: quota }
`;

const VALID_TOKENS = `# keys
k1,sk-test-1111111111111111111111
k2,sk-test-2222222222222222222222,2
k3,sk-test-3333333333333333333333,1,group=team
${LEAK.id},${LEAK.token}
`;

const YAML_NOISE = [
  ":",
  ": ",
  "- ",
  "{",
  "}",
  "[",
  "]",
  "'",
  '"',
  "\n",
  "  ",
  "\t",
  "&a ",
  "*a",
  "!!binary ",
  "!!js/function ",
  "~",
  "null",
  "0x1F",
  "1e999",
  "-1",
  "true",
  "%YAML 1.1\n",
  "@",
  "`",
  "#",
  "|",
  ">",
  "<<: *a",
  "?",
  ",",
  "\u0000",
  "\uFEFF",
  "é",
  "${HOME}",
  "${NOPE}",
];
const WRONG_VALUES: unknown[] = [
  null,
  0,
  -1,
  1.5,
  1e308,
  "",
  "x",
  "127.0.0.1",
  true,
  [],
  [1, "a"],
  {},
  { a: { b: [] } },
  "NaN",
  "-0",
];
const CONFIG_PATHS = [
  ["rotation"],
  ["cooldown_sec"],
  ["server"],
  ["server", "addr"],
  ["server", "api_key"],
  ["pools"],
  ["pools", "openai"],
  ["pools", "openai", "tokens_file"],
  ["pools", "openai", "upstream"],
  ["pools", "openai", "upstream", "base_url"],
  ["pools", "openai", "upstream", "retry_budget"],
  ["pools", "openai", "upstream", "retry_on"],
  ["pools", "openai", "check"],
  ["pools", "openai", "check", "url"],
  ["pools", "anthropic", "fallback"],
  ["pools", "anthropic", "backoff", "rate_limit"],
  ["pools", "anthropic", "classify"],
  ["pools", "anthropic", "max_concurrency"],
  ["state_file"],
  ["alerts"],
  ["prices"],
];

/** One mutation of a text: cut it short, drop or duplicate a span, or splice noise in. */
function mutateText(rng: Rng, text: string, noise: readonly string[]): string {
  const at = rng.int(text.length + 1);
  switch (rng.int(5)) {
    case 0:
      return text.slice(0, at);
    case 1:
      return text.slice(0, at) + text.slice(at + 1 + rng.int(40));
    case 2: {
      const span = text.slice(at, at + 1 + rng.int(60));
      return text.slice(0, at) + span + span + text.slice(at);
    }
    case 3: {
      const lines = text.split("\n");
      const i = rng.int(lines.length);
      const j = rng.int(lines.length);
      [lines[i], lines[j]] = [lines[j]!, lines[i]!];
      return lines.join("\n");
    }
    default:
      return text.slice(0, at) + rng.pick(noise) + text.slice(at);
  }
}

/** The valid config with one value, somewhere, replaced by one of the wrong type. */
function mistype(rng: Rng): string {
  const tree = YAML.parse(VALID_CONFIG) as Record<string, unknown>;
  const path = rng.pick(CONFIG_PATHS);
  let node = tree as Record<string, unknown>;
  for (const key of path.slice(0, -1)) {
    if (typeof node[key] !== "object" || node[key] === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path.at(-1)!] = rng.pick(WRONG_VALUES);
  return YAML.stringify(tree);
}

function randomTokens(rng: Rng): string {
  if (rng.next() < 0.5) {
    let text = VALID_TOKENS;
    for (let n = 1 + rng.int(3); n > 0; n--)
      text = mutateText(rng, text, [
        ",",
        ",,",
        "=",
        "group=",
        "refresh_token=",
        " ",
        "\t",
        "\r\n",
        "\u0000",
        "#",
        "0",
        "-1",
        "é",
        "\uFEFF",
        "x".repeat(200),
      ]);
    return text;
  }
  const field = () =>
    rng.pick([
      "k",
      "sk-abc",
      "",
      " ",
      "0",
      "-2",
      "1e3",
      "group=g",
      "group=",
      "refresh_token=r",
      "x=y",
      "a b",
      "\u0007",
      "ключ",
      "sk-".padEnd(300, "z"),
    ]);
  return Array.from({ length: rng.int(6) }, () => Array.from({ length: 1 + rng.int(4) }, field).join(",")).join(
    rng.pick(["\n", "\r\n"]),
  );
}

interface FuzzCase {
  config: string;
  a: string;
  b: string;
}

function fuzzCase(rng: Rng): FuzzCase {
  const which = rng.int(4);
  let config = VALID_CONFIG;
  if (which === 0) for (let n = 1 + rng.int(3); n > 0; n--) config = mutateText(rng, config, YAML_NOISE);
  if (which === 1) config = mistype(rng);
  return {
    config,
    a: which >= 2 ? randomTokens(rng) : VALID_TOKENS,
    b: which === 3 ? randomTokens(rng) : VALID_TOKENS,
  };
}

/** What a loaded config must be: every pool whole, every value of its type. */
function expectComplete(config: Config): void {
  for (const [name, pool] of Object.entries(config.pools)) {
    expect(pool.name).toBe(name);
    expect(ROTATIONS).toContain(pool.rotation);
    for (const n of [pool.cooldownSec, pool.leaseTtlSec, pool.recheckIntervalSec])
      expect(Number.isFinite(n) && n >= 0).toBe(true);
    for (const key of pool.keys) {
      expect(key.id).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
      expect(key.token).toMatch(/^[\x21-\x7e]+$/);
      expect(Number.isFinite(key.weight) && key.weight > 0).toBe(true);
    }
    if (pool.upstream) expect(pool.upstream.timeoutSec > 0 && Number.isInteger(pool.upstream.maxRetries)).toBe(true);
  }
}

/** Loads one case; returns "ok", or the issues — and throws (failing the test) on anything else. */
function load(dir: ReturnType<typeof tempDir>, c: FuzzCase): "ok" | string[] {
  writeFileSync(dir.file("a.txt"), c.a);
  writeFileSync(dir.file("b.txt"), c.b);
  try {
    expectComplete(parseConfig(c.config, { baseDir: dir.path, env: { HOME: "/home/x" } }));
    return "ok";
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return error.issues;
  }
}

describe("scenario 11: fuzzed config and tokens files", () => {
  it(`ends every one of ${CASES} seeded cases in a whole config or a clear ConfigError`, () => {
    using dir = tempDir();
    const rng = prng(SEED);
    const outcomes = { ok: 0, rejected: 0 };
    for (let i = 0; i < CASES; i++) {
      const c = fuzzCase(rng);
      let result: "ok" | string[];
      try {
        result = load(dir, c);
      } catch (error) {
        throw new Error(
          `case ${i} (seed ${SEED}) threw ${(error as Error)?.stack ?? error}\ninput: ${JSON.stringify(c)}`,
        );
      }
      if (result === "ok") {
        outcomes.ok++;
        continue;
      }
      outcomes.rejected++;
      // Sentences that say where: a path, or FILE:LINE, and no secret of the files.
      expect({ i, empty: result.length === 0 || result.some((issue) => issue.trim().length < 10) }).toEqual({
        i,
        empty: false,
      });
      const secrets = [LEAK.token, "admin-secret-0123456789", "sk-test-1111111111111111111111"];
      expect({ i, leaked: result.filter((issue) => secrets.some((s) => issue.includes(s))) }).toEqual({
        i,
        leaked: [],
      });
    }
    console.log(`config fuzz: ${CASES} cases, ${outcomes.ok} loaded whole, ${outcomes.rejected} rejected with issues`);
    // The generator must exercise both ends, or it tests nothing.
    expect(outcomes.ok).toBeGreaterThan(10);
    expect(outcomes.rejected).toBeGreaterThan(100);
  });

  it("parses random tokens files to keys or FILE:LINE issues and nothing else", () => {
    const rng = prng(SEED + 1);
    for (let i = 0; i < CASES; i++) {
      const text = randomTokens(rng);
      try {
        for (const key of parseTokensFile(text, "t.txt")) expect(key.token).toMatch(/^[\x21-\x7e]+$/);
      } catch (error) {
        if (!(error instanceof ConfigError))
          throw new Error(`case ${i} threw ${(error as Error)?.stack}\ninput: ${JSON.stringify(text)}`);
        expect(error.issues.every((issue) => /^t\.txt(:\d+)?: /.test(issue))).toBe(true);
      }
    }
  });

  it("applies a fuzzed reload whole or not at all: a rejected one leaves every pool and key as it was", async () => {
    const rng = prng(SEED + 2);
    const valid = VALID_CONFIG.replace("  api_key: admin-secret-0123456789\n", "");
    await using kp = await startTestDaemon(
      "tokens_file: tokens.txt\nstate_file: state.db\nserver:\n  addr: 127.0.0.1:0\n",
      "",
      { autoCheck: false },
    );
    writeFileSync(kp.dir.file("a.txt"), VALID_TOKENS);
    writeFileSync(kp.dir.file("b.txt"), VALID_TOKENS);
    writeFileSync(kp.configPath, valid);
    await kp.daemon.reload();
    const status = async () =>
      (await (await kp.fetch("/status")).json()).keys
        .map((k: { pool: string; id: string }) => `${k.pool}/${k.id}`)
        .sort();
    let before = await status();
    let applied = 0;
    for (let i = 0; i < 40; i++) {
      const c = fuzzCase(rng);
      // Server and listen addresses cannot change on a reload; keep the fuzz on what can.
      writeFileSync(kp.configPath, c.config.replace(/^[ \t]*api_key:.*\n/m, ""));
      writeFileSync(kp.dir.file("a.txt"), c.a);
      writeFileSync(kp.dir.file("b.txt"), c.b);
      try {
        await kp.daemon.reload();
        applied++;
        before = await status();
      } catch (error) {
        expect({ i, code: error instanceof DomainError ? error.code : String(error) }).toEqual({
          i,
          code: "INVALID_CONFIG",
        });
        expect({ i, keys: await status() }).toEqual({ i, keys: before });
      }
      // Still serving: a key, or a 404/503 that says why not — never a 500.
      expect([200, 404, 503]).toContain((await kp.fetch("/take?pool=openai")).status);
    }
    expect(applied).toBeGreaterThan(0);
    expect(kp.logs.join("\n")).not.toContain(LEAK.token);
  }, 30_000);
});
