import { describe, expect, it } from "bun:test";
import { join } from "node:path";
import { startTestDaemon } from "./helpers/daemon";

const MAIN = join(import.meta.dir, "../src/main.ts");
const API_KEY = "cli-keys-admin-31";
const CANARY = "sk-canary-1a2b3c4d5e6f7a8b9c0d1e2f";
const CANARY_2 = "sk-canary-ffeeddccbbaa99887766554433";
const CONFIG = `tokens_file: tokens.txt\nstate_file: state.db\ncooldown_sec: 0\nserver:\n  addr: 127.0.0.1:0\n  api_key: ${API_KEY}\n`;

async function keypool(args: string[], options: { stdin?: string; env?: Record<string, string> } = {}) {
  await using proc = Bun.spawn([process.execPath, MAIN, ...args], {
    stdin: options.stdin === undefined ? "ignore" : new Blob([options.stdin]),
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, NO_COLOR: "1", ...options.env },
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { stdout, stderr, code };
}

describe("keypool keys add|rm|enable|disable", () => {
  it("administers keys through the daemon without ever printing a token", async () => {
    await using kp = await startTestDaemon(CONFIG, "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\n");
    const auth = ["--url", kp.url, "--api-key", API_KEY];
    const outputs: string[] = [];
    const run = async (args: string[], options?: Parameters<typeof keypool>[1]) => {
      const result = await keypool(args, options);
      outputs.push(result.stdout, result.stderr);
      return result;
    };

    const fromStdin = await run(
      ["keys", "add", ...auth, "--pool", "default", "--id", "c", "--token-stdin", "--rpm", "60"],
      { stdin: `${CANARY}\n` },
    );
    expect([fromStdin.code, fromStdin.stdout.trim()]).toEqual([0, "added key c (sk-…1e2f) to pool default"]);
    const fromEnv = await run(["keys", "add", ...auth, "--id", "d", "--token-env", "NEW_KEY", "--json"], {
      env: { NEW_KEY: CANARY_2 },
    });
    expect(fromEnv.code).toBe(0);
    expect(JSON.parse(fromEnv.stdout)).toMatchObject({
      id: "d",
      origin: "api",
      masked: "sk-…4433",
      limits: { rpm: null },
    });

    const disabled = await run(["keys", "disable", "c", ...auth]);
    expect([disabled.code, disabled.stdout.trim()]).toEqual([0, "disabled key c (pool default): disabled"]);
    expect((await run(["keys", "enable", "--id", "c", ...auth])).stdout.trim()).toBe(
      "enabled key c (pool default): unknown",
    );

    const list = await run(["keys", "list", "-c", kp.configPath]);
    expect(list.stdout).toMatch(/default\s+c\s+sk-…1e2f\s+1\s+api/);
    expect(list.stdout).toMatch(/default\s+a\s+sk-…aaaa\s+1\s+file/);

    const refused = await run(["keys", "rm", "a", ...auth]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      `keypool: KEY_OWNED_BY_FILE: key "a" in pool "default" is defined in ${kp.dir.file("tokens.txt")}`,
    );
    expect((await run(["keys", "rm", "d", ...auth])).stdout.trim()).toBe("removed key d from pool default");

    // Usage shows up in `keypool status` once a key has been used.
    const lease = await (await kp.fetch("/take", { apiKey: API_KEY })).json();
    await kp.fetch("/release", {
      method: "POST",
      apiKey: API_KEY,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ lease: lease.lease, ok: true, input_tokens: 1500, output_tokens: 500 }),
    });
    const status = await run(["status", ...auth]);
    expect(status.stdout).toContain("USAGE 24H");
    expect(status.stdout).toContain("1 req · 100% ok · 2k tok");

    expect(outputs.filter((text) => text.includes(CANARY) || text.includes(CANARY_2))).toEqual([]);
    expect(kp.logs.filter((line) => line.includes(CANARY) || line.includes(CANARY_2))).toEqual([]);
  });

  it("insists on a token from stdin or a variable, never the command line", async () => {
    const neither = await keypool(["keys", "add", "--url", "http://127.0.0.1:9", "--id", "x"]);
    expect([neither.code, neither.stderr.trim()]).toEqual([
      2,
      "give the token with exactly one of --token-stdin or --token-env VAR (never on the command line, where shell history keeps it)",
    ]);
    const unset = await keypool([
      "keys",
      "add",
      "--url",
      "http://127.0.0.1:9",
      "--token-env",
      "KEYPOOL_TEST_UNSET_VAR",
    ]);
    expect([unset.code, unset.stderr.trim()]).toEqual([2, "--token-env: KEYPOOL_TEST_UNSET_VAR is not set"]);
    const empty = await keypool(["keys", "add", "--url", "http://127.0.0.1:9", "--token-stdin"], { stdin: "" });
    expect([empty.code, empty.stderr.trim()]).toEqual([2, "--token-stdin: stdin was empty"]);
  });
});
