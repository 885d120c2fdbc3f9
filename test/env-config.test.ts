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
          upstream: p.upstream && { enabled: p.upstream.enabled, baseUrl: p.upstream.baseUrl, listen: p.upstream.listen, models: p.upstream.models },
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
        "batch-jobs": { keys: [deriveKeyId(A)], rotation: "lru", cooldownSec: 30, upstream: undefined },
        openai: {
          keys: [deriveKeyId(A), deriveKeyId(B)],
          rotation: "round_robin",
          cooldownSec: 5,
          upstream: { enabled: true, baseUrl: "https://api.openai.com", listen: "127.0.0.1:8080", models: [] },
        },
      },
    });
  });

  it("accepts the <MODEL>_KEYS, API_KEYS, TARGET, PORT and COOLDOWN_MS conventions of similar tools", () => {
    expect(shape({ GPT_4_KEYS: A, API_KEYS: B, TARGET: "https://api.openai.com", PORT: "9000", COOLDOWN_MS: "1500", KEYPOOL_STATE_FILE: "/var/lib/kp.db" })).toEqual({
      server: { host: "127.0.0.1", port: 8787 },
      stateFile: "/var/lib/kp.db",
      pools: {
        default: { keys: [deriveKeyId(B)], rotation: "lru", cooldownSec: 1.5, upstream: { enabled: true, baseUrl: "https://api.openai.com", listen: "127.0.0.1:9000", models: [] } },
        "gpt-4": { keys: [deriveKeyId(A)], rotation: "lru", cooldownSec: 1.5, upstream: { enabled: true, baseUrl: "https://api.openai.com", listen: "127.0.0.1:9000", models: ["gpt-4"] } },
      },
    });
  });

  it("reads the master key file from KEYPOOL_MASTER_KEY_FILE", () => {
    expect(configFromEnv({ API_KEYS: A, KEYPOOL_MASTER_KEY_FILE: "secrets/master.key" }, "/srv/app").store).toEqual({ encryptionKeyFile: "/srv/app/secrets/master.key" });
  });

  it("puts the API on PORT (and KEYPOOL_HOST) when no pool has an upstream", () => {
    expect(shape({ API_KEYS: A, PORT: "0", KEYPOOL_HOST: "0.0.0.0" }).server).toEqual({ host: "0.0.0.0", port: 0 });
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
    const later = issuesOf({ KEYPOOL_POOL_Y_KEYS: B, KEYPOOL_POOL_Y_ROTATION: "fastest", KEYPOOL_POOL_Y_BASE_URL: "ftp://example.com" });
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

  it("says how to configure keypool when there is nothing to go on", () => {
    using dir = tempDir();
    expect(() => findConfig({ cwd: dir.path, env: {} })).toThrow(/no -c PATH was given, there is no keypool.yaml in .*set KEYPOOL_POOL_<NAME>_KEYS=key1,key2/);
  });
});

describe("keypool serve with only environment variables", () => {
  it("starts without any file and hands out the environment's keys", async () => {
    using dir = tempDir();
    await using kp = await spawnDaemon(["serve", "--port", "0"], { KEYPOOL_POOL_DEFAULT_KEYS: A, KEYPOOL_POOL_DEFAULT_COOLDOWN_SEC: "0" }, { cwd: dir.path, cleanEnv: true });
    const taken = await (await fetch(`${kp.url}/take`)).json();
    expect({ id: taken.id, token: taken.token, pool: taken.pool }).toEqual({ id: deriveKeyId(A), token: A, pool: "default" });
    const compat = await (await fetch(`${kp.url}/keys/default`)).json();
    expect(compat).toEqual({ success: true, model: "default", key: A, pool: { totalKeys: 1, healthyKeys: 1 } });
    expect(kp.log()).toContain(`"store":"sqlite:${dir.file("keypool.db")}"`);
    expect(kp.log()).toContain("tokens are stored unencrypted");
    expect(kp.log()).not.toContain(A);
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
    expect(await run({ API_KEYS: `${A},${A}` })).toEqual({ code: 2, stderr: "config error: API_KEYS: item 2 is the same key as item 1 — remove one" });
    const empty = await run({});
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain("the environment defines no pool");
  });
});
