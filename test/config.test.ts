import { describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ConfigError } from "../src/config/errors";
import { loadConfig, parseConfig } from "../src/config/load";

const FIXTURES = resolve(import.meta.dir, "fixtures/config");
const TOKENS = "a,sk-test-aaaaaaaaaaaaaaaa0001\nb,sk-test-bbbbbbbbbbbbbbbb0002\n";

/** A temp dir holding `files`, removed when the `using` scope ends. */
function tempDir(files: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), "keypool-config-"));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return { dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Loads `yaml` as keypool.yaml beside a valid tokens.txt (unless `files` overrides it). */
function load(yaml: string, env: Record<string, string> = {}, files: Record<string, string> = {}) {
  using tmp = tempDir({ "tokens.txt": TOKENS, ...files, "keypool.yaml": yaml });
  return { config: loadConfig(join(tmp.dir, "keypool.yaml"), env), dir: tmp.dir };
}

/** The issues of the ConfigError `fn` throws. */
function issuesOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  throw new Error("expected a ConfigError, but the config loaded");
}

function issuesFor(yaml: string, env: Record<string, string> = {}, files: Record<string, string> = {}) {
  return issuesOf(() => load(yaml, env, files));
}

describe("loadConfig", () => {
  it("runs a poolctl single-pool file unchanged as pool default, with every default applied", () => {
    const config = loadConfig(join(FIXTURES, "poolctl.yaml"), {});
    expect(config).toEqual({
      source: join(FIXTURES, "poolctl.yaml"),
      server: { host: "0.0.0.0", port: 9000, apiKey: undefined },
      metrics: undefined,
      log: undefined,
      stateFile: join(FIXTURES, "keypool.db"),
      shutdownTimeoutSec: 30,
      pools: {
        default: {
          name: "default",
          tokensFile: join(FIXTURES, "tokens.txt"),
          keys: [
            { id: "alpha", token: "sk-fixture-aaaaaaaaaaaa0001", weight: 1 },
            { id: "beta", token: "sk-fixture-bbbbbbbbbbbb0002", weight: 2.5 },
          ],
          rotation: "round_robin",
          cooldownSec: 30,
          recheckIntervalSec: 300,
          leaseTtlSec: 300,
          maxConcurrency: undefined,
          check: {
            kind: "http",
            url: "https://api.example.com/v1/models",
            method: "GET",
            headers: { Authorization: "Bearer {token}" },
            body: undefined,
            successStatus: [200],
            successBody: undefined,
            insecure: undefined,
            timeoutSec: 10,
            concurrency: undefined,
            reviveIntervalSec: undefined,
            failuresToDead: undefined,
          },
          refresh: undefined,
          proxy: undefined,
          upstream: undefined,
        },
      },
    });
  });

  it("gives every pool the top-level per-pool keys as defaults, which a pool may override", () => {
    const { pools, stateFile } = loadConfig(join(FIXTURES, "multi.yaml"), {});
    expect(stateFile).toBe(":memory:");
    expect(Object.keys(pools)).toEqual(["openai", "anthropic"]);
    expect(pools.openai).toMatchObject({ rotation: "weighted", cooldownSec: 5, check: undefined });
    expect(pools.anthropic).toMatchObject({
      rotation: "random",
      cooldownSec: 5,
      // Quotes are shell syntax: the line runs as poolctl ran it, under /bin/sh.
      check: { kind: "command", cmd: ["/bin/sh", "-c", './probe.sh --model "claude small"'], env: {}, timeoutSec: 10 },
    });
  });

  it("applies upstream and refresh defaults", () => {
    const { config } = load(
      "tokens_file: tokens.txt\nupstream: { enabled: true, base_url: https://api.openai.com }\nrefresh: { url: https://auth.example.com/token, ahead_sec: 60 }\n",
    );
    expect(config.pools.default!.upstream).toEqual({
      enabled: true,
      listen: "127.0.0.1:8080",
      baseUrl: "https://api.openai.com",
      authHeader: "Authorization",
      authTemplate: "Bearer {token}",
      retryOn: [401, 403, 429, 500, 502, 503, 504],
      maxRetries: 2,
      quarantineSec: 300,
      cooldownSec: undefined,
      timeoutSec: 60,
      authQuery: undefined,
      clientKeys: undefined,
      maxBodyBytes: 32 * 1024 * 1024,
      pathPrefix: undefined,
      models: [],
    });
    expect(config.pools.default!.refresh).toMatchObject({
      enabled: true,
      method: "POST",
      tokenField: "access_token",
      aheadSec: 60,
    });
  });

  it("reads server addresses as host:port, :port and [v6]:port, with port 0 allowed", () => {
    const addr = (a: string) => load(`tokens_file: tokens.txt\nserver: { addr: "${a}" }\n`).config.server;
    expect(addr("10.0.0.1:0")).toMatchObject({ host: "10.0.0.1", port: 0 });
    expect(addr(":8787")).toMatchObject({ host: "0.0.0.0", port: 8787 });
    expect(addr("[::1]:8787")).toMatchObject({ host: "::1", port: 8787 });
  });

  it("resolves state_file and tokens_file against the config file's directory", () => {
    const { config, dir } = load("tokens_file: tokens.txt\nstate_file: data/state.db\n");
    expect(config.stateFile).toBe(join(dir, "data/state.db"));
    expect(config.pools.default!.tokensFile).toBe(join(dir, "tokens.txt"));
  });
});

describe("environment interpolation", () => {
  it("replaces ${VAR} in string values and keeps $${VAR} as a literal ${VAR}", () => {
    const { config } = load(
      'tokens_file: tokens.txt\nserver: { api_key: "${ADMIN_KEY}" }\ncheck:\n  url: https://x.test/${PATH_PART}\n  body: "$${NOT_ME}"\n',
      { ADMIN_KEY: "admin-secret", PATH_PART: "v1/models" },
    );
    expect(config.server.apiKey).toBe("admin-secret");
    expect(config.pools.default!.check).toMatchObject({ url: "https://x.test/v1/models", body: "${NOT_ME}" });
  });

  it("reports a missing variable with the path that uses it", () => {
    expect(
      issuesFor('tokens_file: tokens.txt\ncheck:\n  url: https://x.test\n  headers: { X-Key: "${MISSING_KEY}" }\n'),
    ).toEqual([
      'check.headers.X-Key: environment variable MISSING_KEY is not set — export it, or write $${MISSING_KEY} for a literal "${MISSING_KEY}"',
    ]);
  });
});

describe("config errors", () => {
  it("names a rotation that is not one of the strategies", () => {
    expect(issuesFor("pools:\n  openai:\n    tokens_file: tokens.txt\n    rotation: lru2\n")).toEqual([
      'pools.openai.rotation: "lru2" is not one of lru, round_robin, random, weighted, most_remaining, least_busy',
    ]);
  });

  it("rejects a negative or non-numeric cooldown", () => {
    expect(issuesFor("tokens_file: tokens.txt\ncooldown_sec: -5\n")).toEqual([
      "cooldown_sec: expected a number of seconds ≥ 0 and ≤ 604800, got -5",
    ]);
    expect(issuesFor("tokens_file: tokens.txt\ncooldown_sec: abc\n")).toEqual([
      'cooldown_sec: expected a number of seconds ≥ 0 and ≤ 604800, got "abc"',
    ]);
  });

  it("rejects unknown keys and suggests the closest known one", () => {
    expect(issuesFor("tokens_file: tokens.txt\nserverr: { addr: :1 }\n")).toEqual([
      'serverr: unknown key (did you mean "server"?)',
    ]);
    expect(issuesFor("tokens_file: tokens.txt\nrefresh: { url: https://a.test, token_feild: t }\n")).toEqual([
      'refresh.token_feild: unknown key (did you mean "token_field"?)',
    ]);
  });

  it("rejects a check with both url and cmd", () => {
    expect(issuesFor("tokens_file: tokens.txt\ncheck: { url: https://a.test, cmd: [probe] }\n")).toEqual([
      "check: has both url and cmd — a check is an HTTP request (url) or a command (cmd); keep one",
    ]);
  });

  it("rejects an address that is not host:port", () => {
    expect(issuesFor("tokens_file: tokens.txt\nserver: { addr: localhost }\n")).toEqual([
      'server.addr: "localhost" is not host:port with a port 0–65535 — write e.g. 127.0.0.1:8787 or :8787',
    ]);
  });

  it("names the tokens file it cannot read and how to fix it", () => {
    using tmp = tempDir({ "keypool.yaml": "tokens_file: missing.txt\n" });
    expect(issuesOf(() => loadConfig(join(tmp.dir, "keypool.yaml"), {}))).toEqual([
      `tokens_file: cannot read "${join(tmp.dir, "missing.txt")}" (no such file) — create it or fix the path`,
    ]);
  });

  it("requires a tokens_file in every pool", () => {
    expect(issuesFor("pools:\n  a: { rotation: lru }\n")).toEqual([
      "pools.a.tokens_file: required — point it at a file with one key per line (see example.tokens.txt)",
    ]);
  });

  it("reports a YAML syntax error as file:line:col", () => {
    using tmp = tempDir({ "keypool.yaml": "rotation: lru\nserver:\n\taddr: :1\n" });
    const file = join(tmp.dir, "keypool.yaml");
    expect(issuesOf(() => loadConfig(file, {}))).toEqual([
      `${file}:3:1: YAML syntax error: Tabs are not allowed as indentation`,
    ]);
  });

  it("does not echo source text from a YAML error, which could be a secret", () => {
    const issues = issuesFor("tokens_file: tokens.txt\nserver: { api_key: sk-CANARY-000000000001 }}\n");
    expect(issues[0]).toStartWith(`${issues[0]!.split(":")[0]}:2:`);
    for (const issue of issues) expect(issue).not.toContain("CANARY");
  });

  it("explains an empty file and a missing config file", () => {
    using tmp = tempDir({ "keypool.yaml": "# nothing yet\n" });
    const file = join(tmp.dir, "keypool.yaml");
    expect(issuesOf(() => loadConfig(file, {}))).toEqual([
      `${file}: the file is empty — add at least tokens_file (see keypool.example.yaml)`,
    ]);
    expect(issuesOf(() => loadConfig(join(tmp.dir, "nope.yaml"), {}))).toEqual([
      `cannot read config file "${join(tmp.dir, "nope.yaml")}" (no such file) — pass -c PATH, or start from keypool.example.yaml`,
    ]);
  });

  it("collects every problem in the file before failing", () => {
    const yaml = [
      "rotation: sideways",
      "pools:",
      "  Bad Name: { tokens_file: tokens.txt }",
      "  ok:",
      "    tokens_file: tokens.txt",
      "    max_concurrency: 0",
      "    upstream: { enabled: true, auth_template: Bearer }",
    ].join("\n");
    expect(issuesFor(yaml)).toEqual([
      "pools.Bad Name: pool names are 1–64 lowercase letters, digits, _ and -, starting with a letter or digit — rename it",
      'rotation: "sideways" is not one of lru, round_robin, random, weighted, most_remaining, least_busy',
      "pools.ok.max_concurrency: expected a whole number ≥ 1 and ≤ 1000000000, got 0",
      "pools.ok.upstream.base_url: required when enabled is true — e.g. https://api.openai.com",
      'pools.ok.upstream.auth_template: must contain {token}, e.g. "Bearer {token}"',
    ]);
  });

  it("passes tokens file problems through as FILE:LINE issues", () => {
    expect(
      issuesFor("tokens_file: tokens.txt\n", {}, { "tokens.txt": "a,sk-1111111111111111\na,sk-2222222222222222\n" }),
    ).toEqual(['tokens.txt:2: duplicate id "a" (first on line 1) — give each key its own id']);
  });

  it("never echoes a key's token or refresh token written into a wrong field", () => {
    // Short enough to be quoted as an ordinary value, were it not known to be a token.
    const yaml = "tokens_file: tokens.txt\nrotation: k3y-AbCd12\nserver: { addr: rt-Zz9y8x }\n";
    const issues = issuesFor(yaml, {}, { "tokens.txt": "one,k3y-AbCd12,1,refresh_token=rt-Zz9y8x\n" });
    expect(issues).toEqual([
      'server.addr: "(the refresh token of key one)" is not host:port with a port 0–65535 — write e.g. 127.0.0.1:8787 or :8787',
      'rotation: "(the token of key one)" is not one of lru, round_robin, random, weighted, most_remaining, least_busy',
    ]);
  });

  it("never puts a token or secret value in an error message", () => {
    const canary = "sk-CANARY-9f8e7d6c5b4a39281706";
    const tokens = `one,${canary}\ntwo,${canary}\n${canary} x\nthree,${canary}tail,notaweight\n`;
    const yaml = [
      "tokens_file: tokens.txt",
      'proxy: "${SECRET}"',
      'server: { api_key: 42, addr: "${SECRET}" }',
      "check: { url: '${SECRET}', headers: { Authorization: [ '${SECRET}' ] }, timeout_sec: '${SECRET}' }",
      "upstream: { enabled: true, base_url: '${SECRET}', listen: '${SECRET}' }",
      "rotation: '${SECRET}'",
    ].join("\n");
    const issues = issuesFor(yaml, { SECRET: canary }, { "tokens.txt": tokens });
    // Expect one issue per bad line and field above, so none was skipped by an early YAML error.
    expect(issues.length).toBe(12);
    // A value shaped like a credential is described by its size only, whatever variable it came from.
    expect(issues).toContain(
      "rotation: a string of 30 characters is not one of lru, round_robin, random, weighted, most_remaining, least_busy",
    );
    for (const issue of issues) expect(issue).not.toContain("CANARY");
  });
});

describe("parseConfig", () => {
  it("resolves relative paths against baseDir without a file on disk", () => {
    using tmp = tempDir({ "tokens.txt": TOKENS });
    const config = parseConfig("tokens_file: tokens.txt\nstate_file: ':memory:'\n", { baseDir: tmp.dir, env: {} });
    expect(config.stateFile).toBe(":memory:");
    expect(config.pools.default!.keys.map((k) => k.id)).toEqual(["a", "b"]);
  });
});
