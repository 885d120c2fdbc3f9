import { describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { configFromEnv, envDefinesPools } from "../src/config/env-config";
import { ConfigError } from "../src/config/errors";
import { findConfig } from "../src/config/find-config";
import { deriveKeyId } from "../src/config/tokens-file";
import { spawnDaemon } from "./helpers/spawn-daemon";
import { tempDir } from "./helpers/temp-dir";

const A = "sk-env-aaaaaaaaaaaaaaaaaaaaaaaa";
const B = "sk-env-bbbbbbbbbbbbbbbbbbbbbbbb";

/** What a pool has when no variable says otherwise, beyond keys, rotation, rest and upstream. */
const NO_EXTRAS = { recheckIntervalSec: 300, backoff: undefined, sessionTtlSec: undefined };

/** The parts of a config the environment decides, per pool. */
function shape(env: Record<string, string>) {
  const config = configFromEnv(env, "/srv/app");
  return {
    server: config.server,
    stateFile: config.stateFile,
    pools: Object.fromEntries(
      Object.values(config.pools).map((p) => [
        p.name,
        {
          keys: p.keys.map((k) => k.id),
          rotation: p.rotation,
          cooldownSec: p.cooldownSec,
          recheckIntervalSec: p.recheckIntervalSec,
          backoff: p.backoff,
          sessionTtlSec: p.session?.ttlSec,
          upstream: p.upstream && {
            enabled: p.upstream.enabled,
            baseUrl: p.upstream.baseUrl,
            listen: p.upstream.listen,
            models: p.upstream.models,
          },
        },
      ]),
    ),
  };
}

function issuesOf(env: Record<string, string>): string[] {
  try {
    configFromEnv(env, "/srv/app");
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("configFromEnv", () => {
  it("defines a pool per KEYPOOL_POOL_<NAME>_KEYS, with its gateway turned on by _BASE_URL", () => {
    expect(
      shape({
        KEYPOOL_POOL_OPENAI_KEYS: `${A}, ${B}`,
        KEYPOOL_POOL_OPENAI_BASE_URL: "https://api.openai.com",
        KEYPOOL_POOL_OPENAI_ROTATION: "round_robin",
        KEYPOOL_POOL_OPENAI_COOLDOWN_SEC: "5",
        KEYPOOL_POOL_BATCH_JOBS_KEYS: A,
      }),
    ).toEqual({
      server: { host: "127.0.0.1", port: 8787 },
      stateFile: "/srv/app/keypool.db",
      pools: {
        "batch-jobs": { ...NO_EXTRAS, keys: [deriveKeyId(A)], rotation: "lru", cooldownSec: 0, upstream: undefined },
        openai: {
          ...NO_EXTRAS,
          keys: [deriveKeyId(A), deriveKeyId(B)],
          rotation: "round_robin",
          cooldownSec: 5,
          upstream: { enabled: true, baseUrl: "https://api.openai.com", listen: "127.0.0.1:8080", models: [] },
        },
      },
    });
  });

  it("rests no key after a take unless _COOLDOWN_SEC asks for it, whatever convention defined the pool", () => {
    const pools = shape({ KEYPOOL_POOL_X_KEYS: A, GPT_4_KEYS: B, API_KEYS: "sk-env-cccccccccccccccccccccc" }).pools;
    expect(Object.values(pools).map((p) => p.cooldownSec)).toEqual([0, 0, 0]);
  });

  it("reads api-key-lb's API_KEYS with its defaults: a gateway to api.openai.com on port 4577", () => {
    expect(shape({ API_KEYS: `${A},${B}` })).toEqual({
      server: { host: "127.0.0.1", port: 8787 },
      stateFile: "/srv/app/keypool.db",
      pools: {
        default: {
          ...NO_EXTRAS,
          keys: [deriveKeyId(A), deriveKeyId(B)],
          rotation: "lru",
          cooldownSec: 0,
          sessionTtlSec: undefined,
          upstream: { enabled: true, baseUrl: "https://api.openai.com", listen: "127.0.0.1:4577", models: [] },
        },
      },
    });
  });

  it("makes COOLDOWN_MS a flat rest after a 429 and SESSION_TTL_MS the sticky sessions' lifetime", () => {
    const pool = shape({
      API_KEYS: A,
      TARGET: "https://api.z.ai",
      PORT: "9000",
      COOLDOWN_MS: "1500",
      SESSION_TTL_MS: "60000",
    }).pools.default!;
    expect(pool).toEqual({
      keys: [deriveKeyId(A)],
      rotation: "lru",
      cooldownSec: 0,
      recheckIntervalSec: 300,
      backoff: { rate_limit: { baseSec: 1.5, stepSec: 0, maxSec: 1.5 } },
      sessionTtlSec: 60,
      upstream: { enabled: true, baseUrl: "https://api.z.ai", listen: "127.0.0.1:9000", models: [] },
    });
  });

  it("reads Key Pool Manager's <MODEL>_KEYS, KEY_POOL_HOST, KEY_POOL_PORT and HEALTH_CHECK_INTERVAL", () => {
    expect(shape({ GPT_4_KEYS: A, CLAUDE_3_OPUS_KEYS: B })).toEqual({
      server: { host: "127.0.0.1", port: 8769 },
      stateFile: "/srv/app/keypool.db",
      pools: {
        "claude-3-opus": { ...NO_EXTRAS, keys: [deriveKeyId(B)], rotation: "lru", cooldownSec: 0, upstream: undefined },
        "gpt-4": { ...NO_EXTRAS, keys: [deriveKeyId(A)], rotation: "lru", cooldownSec: 0, upstream: undefined },
      },
    });
    const tuned = shape({
      GPT_4_KEYS: A,
      KEY_POOL_HOST: "0.0.0.0",
      KEY_POOL_PORT: "9100",
      HEALTH_CHECK_INTERVAL: "45000",
    });
    expect([tuned.server, tuned.pools["gpt-4"]!.recheckIntervalSec]).toEqual([{ host: "0.0.0.0", port: 9100 }, 45]);
  });

  it("gives <MODEL>_KEYS pools a gateway for their model when TARGET is set", () => {
    const config = shape({
      GPT_4_KEYS: A,
      TARGET: "https://api.openai.com",
      PORT: "9000",
      KEYPOOL_STATE_FILE: "/var/lib/kp.db",
    });
    expect([config.server, config.stateFile, config.pools["gpt-4"]!.upstream]).toEqual([
      { host: "127.0.0.1", port: 8769 },
      "/var/lib/kp.db",
      { enabled: true, baseUrl: "https://api.openai.com", listen: "127.0.0.1:9000", models: ["gpt-4"] },
    ]);
  });

  it("reads the master key file from KEYPOOL_MASTER_KEY_FILE", () => {
    expect(configFromEnv({ API_KEYS: A, KEYPOOL_MASTER_KEY_FILE: "secrets/master.key" }, "/srv/app").store).toEqual({
      encryptionKeyFile: "/srv/app/secrets/master.key",
    });
  });

  it("puts the API on PORT (and KEYPOOL_HOST) when no pool has an upstream", () => {
    expect(shape({ KEYPOOL_POOL_DEFAULT_KEYS: A, PORT: "0", KEYPOOL_HOST: "0.0.0.0" }).server).toEqual({
      host: "0.0.0.0",
      port: 0,
    });
  });

  it.each([
    ["COOLDOWN_MS", "0", "expected whole milliseconds from 1 to 86400000 (24 h)"],
    ["COOLDOWN_MS", "86400001", "expected whole milliseconds from 1 to 86400000 (24 h)"],
    ["COOLDOWN_MS", "1e3", "expected whole milliseconds from 1 to 86400000 (24 h)"],
    ["SESSION_TTL_MS", "999", "expected whole milliseconds from 1000 (1 s) to 604800000 (7 days)"],
    ["SESSION_TTL_MS", "Infinity", "expected whole milliseconds from 1000 (1 s) to 604800000 (7 days)"],
    ["HEALTH_CHECK_INTERVAL", "-30000", "expected whole milliseconds from 1000 (1 s) to 86400000 (24 h)"],
    ["HEALTH_CHECK_INTERVAL", "NaN", "expected whole milliseconds from 1000 (1 s) to 86400000 (24 h)"],
    ["KEY_POOL_PORT", "65536", "expected a port number 0–65535"],
    ["PORT", "80.5", "expected a port number 0–65535"],
  ])("refuses %s=%p, naming the variable and its range", (variable, value, message) => {
    expect(issuesOf({ API_KEYS: A, [variable]: value })).toEqual([
      `${variable}: ${message}, got ${JSON.stringify(value)}`,
    ]);
  });

  it("refuses KEY_POOL_HOST and KEYPOOL_HOST that disagree", () => {
    expect(issuesOf({ GPT_4_KEYS: A, KEY_POOL_HOST: "0.0.0.0", KEYPOOL_HOST: "127.0.0.1" })).toEqual([
      'KEY_POOL_HOST: says "0.0.0.0" but KEYPOOL_HOST says "127.0.0.1" — set only one (empty counts as unset)',
    ]);
  });

  it("names the variable at fault and never shows a key", () => {
    const issues = issuesOf({
      API_KEYS: `${A},${A},sk has space`,
      KEYPOOL_POOL_DEFAULT_KEYS: B,
      KEYPOOL_POOL_X_BASE_URL: "https://example.com",
      KEYPOOL_POOL_Y_KEYS: B,
      KEYPOOL_POOL_Y_ROTATION: "fastest",
      KEYPOOL_POOL_Y_BASE_URL: "ftp://example.com",
      PORT: "http",
    });
    expect(issues).toEqual([
      'KEYPOOL_POOL_DEFAULT_KEYS: defines pool "default", which API_KEYS already defines — keep one of the two',
      "KEYPOOL_POOL_X_BASE_URL: there is no KEYPOOL_POOL_X_KEYS — set the pool's keys too, or unset this",
      'PORT: expected a port number 0–65535, got "http"',
      "API_KEYS: item 2 is the same key as item 1 — remove one",
      "API_KEYS: item 3 contains whitespace — separate keys with commas only",
    ]);
    const later = issuesOf({
      KEYPOOL_POOL_Y_KEYS: B,
      KEYPOOL_POOL_Y_ROTATION: "fastest",
      KEYPOOL_POOL_Y_BASE_URL: "ftp://example.com",
    });
    expect(later.map((i) => i.split(":")[0])).toEqual(["KEYPOOL_POOL_Y_ROTATION", "KEYPOOL_POOL_Y_BASE_URL"]);
    expect([...issues, ...later].join("\n")).not.toContain("sk-env");
  });

  it("ignores *_KEYS variables other software sets", () => {
    expect(envDefinesPools({ GPG_KEYS: "ABCD 1234", SSH_KEYS: "x" })).toBe(false);
    expect(envDefinesPools({ CLAUDE_3_OPUS_KEYS: A })).toBe(true);
  });
});

describe("findConfig", () => {
  it("prefers -c, then keypool.yaml in the working directory, then the environment", () => {
    using dir = tempDir();
    writeFileSync(dir.file("tokens.txt"), `file,${A}\n`);
    const env = { API_KEYS: B };
    expect(findConfig({ cwd: dir.path, env }).pools.default!.keys[0]!.id).toBe(deriveKeyId(B));
    writeFileSync(dir.file("keypool.yaml"), "tokens_file: tokens.txt\n");
    expect(findConfig({ cwd: dir.path, env }).pools.default!.keys[0]!.id).toBe("file");
    writeFileSync(dir.file("other.yaml"), "tokens_file: tokens.txt\nrotation: random\n");
    expect(findConfig({ cwd: dir.path, env, path: "other.yaml" }).pools.default!.rotation).toBe("random");
  });

  it("falls back to KEYPOOL_DEFAULT_CONFIG only when the environment defines no pool", () => {
    using dir = tempDir();
    writeFileSync(dir.file("tokens.txt"), `file,${A}\n`);
    writeFileSync(dir.file("image.yaml"), "tokens_file: tokens.txt\n");
    const env = { KEYPOOL_DEFAULT_CONFIG: dir.file("image.yaml") };
    expect(findConfig({ cwd: dir.path, env }).pools.default!.keys[0]!.id).toBe("file");
    expect(Object.keys(findConfig({ cwd: dir.path, env: { ...env, GPT_4_KEYS: B } }).pools)).toEqual(["gpt-4"]);
  });

  it("says how to configure keypool when there is nothing to go on", () => {
    using dir = tempDir();
    expect(() => findConfig({ cwd: dir.path, env: {} })).toThrow(
      /no -c PATH was given, there is no keypool.yaml in .*set KEYPOOL_POOL_<NAME>_KEYS=key1,key2/,
    );
  });
});

describe("keypool serve with only environment variables", () => {
  it("starts without any file and hands out the environment's keys", async () => {
    using dir = tempDir();
    await using kp = await spawnDaemon(
      ["serve", "--port", "0"],
      { KEYPOOL_POOL_DEFAULT_KEYS: A, KEYPOOL_POOL_DEFAULT_COOLDOWN_SEC: "0" },
      { cwd: dir.path, cleanEnv: true },
    );
    const taken = await (await fetch(`${kp.url}/take`)).json();
    expect({ id: taken.id, token: taken.token, pool: taken.pool }).toEqual({
      id: deriveKeyId(A),
      token: A,
      pool: "default",
    });
    const compat = await (await fetch(`${kp.url}/keys/default`)).json();
    expect(compat).toEqual({ success: true, model: "default", key: A, pool: { totalKeys: 1, healthyKeys: 1 } });
    expect(kp.log()).toContain(`"store":"sqlite:${dir.file("keypool.db")}"`);
    expect(kp.log()).toContain("tokens are stored unencrypted");
    expect(kp.log()).not.toContain(A);
  });

  it("hands out keys of a two-key pool five times in a row: no rest after a take", async () => {
    using dir = tempDir();
    await using kp = await spawnDaemon(
      ["serve", "--port", "0"],
      { KEYPOOL_POOL_DEFAULT_KEYS: `${A},${B}` },
      { cwd: dir.path, cleanEnv: true },
    );
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const response = await fetch(`${kp.url}/take`);
      statuses.push(response.status);
      await response.body?.cancel();
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200]);
  });

  it("exits 2 naming the variable when the environment is wrong, and explains when it is empty", async () => {
    using dir = tempDir();
    const run = async (env: Record<string, string>) => {
      const proc = Bun.spawn([process.execPath, `${import.meta.dir}/../src/main.ts`, "serve"], {
        cwd: dir.path,
        env: { PATH: process.env.PATH ?? "", ...env },
        stdout: "pipe",
        stderr: "pipe",
      });
      const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
      return { code, stderr: stderr.trim() };
    };
    expect(await run({ API_KEYS: `${A},${A}` })).toEqual({
      code: 2,
      stderr: "config error: API_KEYS: item 2 is the same key as item 1 — remove one",
    });
    const empty = await run({});
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain("the environment defines no pool");
  });
});
