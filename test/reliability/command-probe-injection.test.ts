/**
 * Scenario 13: tokens that look like shell — `$(…)`, backticks, `;`, pipes, redirections, newlines —
 * reach a command probe only through KEYPOOL_TOKEN, also when the check is a poolctl-style shell line whose
 * `{token}` the shell expands from that variable, and nothing in them runs.
 * Checked at the probe, and end to end through a daemon's health checker reading a tokens file.
 * (One combined token at the probe: test/probe.test.ts.)
 */
import { afterAll, describe, expect, it } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import YAML from "yaml";
import { readConfigTree } from "../../src/config/load";
import type { CheckConfig } from "../../src/config/types";
import { probeKey } from "../../src/health/probe";
import { startTestDaemon } from "../helpers/daemon";
import { tempDir } from "../helpers/temp-dir";
import { canary, leaksOf } from "./_canary";

/** Shell that would create `marker`-N if anything ever handed the token to a shell. */
function hostileTokens(marker: string): string[] {
  return [
    `$(touch ${marker}-1)`,
    `\`touch ${marker}-2\``,
    `;touch ${marker}-3`,
    `|touch ${marker}-4`,
    `&&touch ${marker}-5`,
    `>${marker}-6`,
    `$(touch\${IFS}${marker}-7)`,
    `'";touch ${marker}-8;'`,
    `\ntouch ${marker}-9\n`,
    `$HOME$PATH%PATH%!!`,
    `-rf`,
  ];
}

/**
 * The probe command (a script file, so no flag-looking token is taken by bun itself): prints whether its two
 * arguments, as the shell expanded them, and KEYPOOL_TOKEN are exactly the token and the embedded form.
 */
const ECHO_SOURCE = `const [whole, embedded] = process.argv.slice(2); const t = process.env.KEYPOOL_TOKEN;
  console.log(whole === t && embedded === "key=" + t + ";" ? "literal" : "mangled:" + JSON.stringify([whole, embedded, t]));`;
const scripts = tempDir("keypool-probe-script-");
const ECHO = scripts.file("echo-argv.ts");
await Bun.write(ECHO, ECHO_SOURCE);
afterAll(() => scripts[Symbol.dispose]());
/** As a poolctl user writes it: one shell line, `{token}` bare and inside single quotes. */
const CHECK = { cmd: `${process.execPath} ${ECHO} {token} 'key={token};'`, success_output: "literal", timeout_sec: 10 };

function loadedCheck(): CheckConfig {
  const config = readConfigTree({ check: CHECK }, { baseDir: scripts.path, keys: { default: [] } });
  return config.pools.default!.check!;
}

describe("scenario 13: shell-looking tokens in a command probe", () => {
  it("passes each through KEYPOOL_TOKEN into one literal argument of a shell line, running nothing (probe)", async () => {
    using dir = tempDir();
    const marker = dir.file("pwned");
    const check = loadedCheck();
    for (const token of hostileTokens(marker)) {
      const result = await probeKey(check, token);
      expect({ token, ok: result.ok, reason: result.reason }).toEqual({ token, ok: true, reason: "ok" });
    }
    expect(readdirSync(dir.path)).toEqual([]);
  });

  it("probes keys from a tokens file through the daemon's checker with the same result: all live, nothing run", async () => {
    using markers = tempDir();
    const marker = markers.file("pwned");
    // A tokens file holds no whitespace in a token (keypool refuses one): spaces become ${IFS}, newlines go.
    const tokens = hostileTokens(marker)
      .map((t) => t.replaceAll(" ", "${IFS}"))
      .filter((t) => !/\s/.test(t));
    const leak = canary("probe");
    const lines = [...tokens.map((t, i) => `k${i},${t}`), `${leak.id},${leak.token}`].join("\n");
    await using kp = await startTestDaemon(
      YAML.stringify({
        tokens_file: "tokens.txt",
        state_file: "state.db",
        server: { addr: "127.0.0.1:0" },
        check: CHECK,
      }),
      `${lines}\n`,
      { autoCheck: false },
    );
    await kp.daemon.checker.tick();
    const status = (await (await kp.fetch("/status")).json()) as {
      keys: Array<{ id: string; state: string; reason: string | null }>;
    };
    const states = Object.fromEntries(status.keys.map((k) => [k.id, `${k.state} ${k.reason ?? ""}`.trim()]));
    expect(states).toEqual(Object.fromEntries([...tokens.map((_, i) => [`k${i}`, "live"]), [leak.id, "live"]]));
    expect(readdirSync(markers.path)).toEqual([]);
    expect(existsSync(`${marker}-1`)).toBe(false);
    const seen = [...kp.logs, JSON.stringify(status)].join("\n");
    expect(leaksOf([leak], [seen])).toEqual([]);
    // The hostile tokens hold temp paths that logs name anyway, so only whole tokens count here.
    expect(tokens.filter((t) => seen.includes(t))).toEqual([]);
  }, 30_000);

  it("refuses a token with a line break at every way in, so none ever reaches a probe", async () => {
    const { parseTokensFile } = await import("../../src/config/tokens-file");
    const { configFromEnv } = await import("../../src/config/env-config");
    // \n ends a line of the file (the rest is a line of its own); \r inside one is refused.
    expect(() => parseTokensFile("a,sk-one\rtouch-x\n", "t.txt")).toThrow("whitespace");
    expect(() => configFromEnv({ API_KEYS: "sk-one\n$(touch-x)" }, "/tmp")).toThrow("whitespace");
    await using kp = await startTestDaemon(
      YAML.stringify({ tokens_file: "tokens.txt", state_file: "state.db", server: { addr: "127.0.0.1:0" } }),
      "a,sk-test-aaaaaaaaaaaaaaaa\n",
    );
    const added = await kp.fetch("/pools/default/keys", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: "sk-x\n$(touch pwned)" }),
    });
    expect(added.status).toBe(400);
  });
});
