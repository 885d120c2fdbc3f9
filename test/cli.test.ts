import { describe, expect, it } from "bun:test";
import { startTestDaemon } from "./helpers/daemon";
import { runKeypool } from "./helpers/run-keypool";

const CANARY = "sk-canary-0c1d2e3f4a5b6c7d8e9f0a1b2c3d";
const TOKENS = `a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\ncanary,${CANARY}\n`;
const CONFIG =
  "tokens_file: tokens.txt\nstate_file: state.db\ncooldown_sec: 0\nserver:\n  addr: 127.0.0.1:0\n  api_key: cli-admin-key-42\n";

const keypool = (...args: string[]) => runKeypool(args);

describe("keypool CLI against a running daemon", () => {
  it("takes, releases and shows status without printing a token unless asked", async () => {
    await using kp = await startTestDaemon(CONFIG, TOKENS);
    const auth = ["--url", kp.url, "--api-key", "cli-admin-key-42"];
    const outputs: string[] = [];
    const run = async (...args: string[]) => {
      const result = await keypool(...args);
      outputs.push(result.stdout, result.stderr);
      return result;
    };

    const take = await run("take", ...auth, "--json");
    expect(take.code).toBe(0);
    const lease = JSON.parse(take.stdout);
    expect(Object.keys(lease).sort()).toEqual(["expires_at", "id", "lease", "masked", "pool"]);

    const release = await run("release", ...auth, "--lease", lease.lease, "--status", "429");
    // A 429 rests the key on the rate_limit ladder even with cooldown_sec 0.
    expect([release.code, release.stdout.trim()]).toEqual([0, `released ${lease.id} (pool default): cooling`]);

    const status = await run("status", ...auth);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain("pool default: 2 keys");
    expect(status.stdout).toMatch(/canary\s+sk-…2c3d/);

    const statusJson = await run("status", ...auth, "--json");
    expect(JSON.parse(statusJson.stdout).pools.default.total).toBe(2);

    expect((await run("keys", "list", "-c", kp.configPath)).stdout).toMatch(/default\s+canary\s+sk-…2c3d/);
    expect((await run("config", "validate", "-c", kp.configPath)).code).toBe(0);

    const unauthorized = await run("status", "--url", kp.url, "--api-key", "wrong");
    expect([unauthorized.code, unauthorized.stderr.trim()]).toEqual([
      1,
      "keypool: UNAUTHORIZED: missing or wrong API key: send it as X-API-Key or Authorization: Bearer",
    ]);

    expect(outputs.filter((text) => text.includes(CANARY))).toEqual([]);
    expect(outputs.filter((text) => text.includes("cli-admin-key-42"))).toEqual([]);

    const revealed = await keypool("take", ...auth, "--reveal");
    expect(revealed.stdout.trim()).toMatch(/^sk-(test|canary)-/);
  });

  it("explains an unreachable daemon and exits 1", async () => {
    const result = await keypool("status", "--url", "http://127.0.0.1:9");
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("cannot reach keypool at http://127.0.0.1:9");
  });

  it("prints help for every command and exits 0", async () => {
    for (const command of [
      [],
      ["serve"],
      ["check"],
      ["status"],
      ["take"],
      ["release"],
      ["keys", "list"],
      ["config", "validate"],
      ["version"],
    ]) {
      const result = await keypool(...command, "--help");
      expect({ command, code: result.code }).toEqual({ command, code: 0 });
      expect(result.stdout).toContain("USAGE");
    }
  });

  it("rejects an unknown command with exit 2", async () => {
    const result = await keypool("frobnicate");
    expect(result.code).toBe(2);
  });
});

describe("keypool config validate", () => {
  it("masks tokens, refresh tokens, client keys and the API key", async () => {
    const { tempDir } = await import("./helpers/temp-dir");
    const { writeFileSync } = await import("node:fs");
    using dir = tempDir();
    const secrets = [
      "sk-canary-token-aaaaaaaaaaaaaaaa",
      "rt-canary-refresh-bbbbbbbbbbbbbb",
      "ck-canary-client-cccccccccccccc",
      "ak-canary-admin-dddddddddddddd",
    ];
    writeFileSync(dir.file("tokens.txt"), `a,${secrets[0]},1,refresh_token=${secrets[1]}\n`);
    writeFileSync(
      dir.file("keypool.yaml"),
      `tokens_file: tokens.txt\nserver: { api_key: ${secrets[3]} }\nupstream: { enabled: true, base_url: "http://127.0.0.1:9", client_keys: [${secrets[2]}] }\n`,
    );
    for (const format of [[], ["--json"]]) {
      const result = await keypool("config", "validate", "-c", dir.file("keypool.yaml"), ...format);
      expect(result.code).toBe(0);
      for (const secret of secrets) expect(result.stdout + result.stderr).not.toContain(secret);
    }
  });
});
