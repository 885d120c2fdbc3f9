/**
 * Issue 16, class 5 — probes get the least. A real `keypool check` process runs with canary secrets in its
 * environment (master key, API key, a provider key of its own); the command probes it starts must see the
 * token and the pool's own variables, none of those secrets, and never the token in any process's argv.
 * Whatever a probe prints about the token comes back masked. Config refuses `{token}` in argv (exit 2).
 * And no answer to a mistake — a wrongly-shaped admin body — quotes the secret it was sent.
 */
import { describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import YAML from "yaml";
import type { RefreshConfig } from "../../src/config/types";
import { TOKEN_VARIABLE } from "../../src/config/types";
import { requestNewToken } from "../../src/health/refresh";
import { BASE_VARIABLES, KEY_ID_VARIABLE } from "../../src/health/_probe-env";
import { startTestDaemon } from "../helpers/daemon";
import { startFakeUpstream } from "../helpers/fake-upstream";
import { runKeypool } from "../helpers/run-keypool";
import { tempDir } from "../helpers/temp-dir";
import { type Canary, canary, leaksOf, tokensLines } from "./_canary";

/** keypool's own secrets, as canaries: none may reach a probe, its output or keypool's. */
function secretCanaries() {
  const master = { id: "KEYPOOL_MASTER_KEY", token: crypto.getRandomValues(Buffer.alloc(32)).toString("hex") };
  const apiKey = canary("api-key");
  const provider = canary("provider-key");
  const env = { KEYPOOL_MASTER_KEY: master.token, KEYPOOL_API_KEY: apiKey.token, OPENAI_API_KEY: provider.token };
  return { env, all: [master, { ...apiKey, id: "KEYPOOL_API_KEY" }, { ...provider, id: "OPENAI_API_KEY" }] };
}

interface CheckReport {
  keys: Array<{ id: string; status: string; reason: string }>;
}

/** Runs `keypool check --json` on `check` over `keys`; resolves with the report and everything printed. */
async function checkWith(check: Record<string, unknown>, keys: Canary[], env: Record<string, string> = {}) {
  using dir = tempDir("keypool-privilege-");
  await Bun.write(dir.file("tokens.txt"), tokensLines(keys));
  await Bun.write(dir.file("pool.yaml"), YAML.stringify({ tokens_file: "tokens.txt", state_file: "state.db", check }));
  const run = await runKeypool(["check", "-c", dir.file("pool.yaml"), "--json", "--min-live", "0"], { env });
  const report = run.code === 0 ? (JSON.parse(run.stdout) as CheckReport) : undefined;
  const states = Object.fromEntries(report?.keys.map((k) => [k.id, k.status]) ?? []);
  return { run, report, states, printed: `${run.stdout}\n${run.stderr}` };
}

/** `NAME=value` lines of an `env` dump (values are one line each here). */
function parseEnvDump(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split("\n")
      .filter((line) => line.includes("="))
      .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
  );
}

describe("a command probe's environment", () => {
  it("holds the token, the key id, the pool's check.env and a small base — none of keypool's secrets", async () => {
    using out = tempDir("keypool-probe-env-");
    const key = canary("probe-env");
    const secrets = secretCanaries();
    const { run, states, printed } = await checkWith(
      {
        // ${…} in a cmd line is the shell's, from the probe's environment: asking for a secret gets nothing.
        cmd: 'env > "$OUT_DIR/env-$KEYPOOL_KEY_ID"; printf %s "${KEYPOOL_MASTER_KEY}${KEYPOOL_API_KEY}" > "$OUT_DIR/asked"',
        env: { OUT_DIR: out.path, POOL_REGION: "eu-west" },
      },
      [key],
      { ...secrets.env, LC_ALL: "C.UTF-8", TZ: "UTC" },
    );
    expect({ code: run.code, states }).toEqual({ code: 0, states: { [key.id]: "live" } });

    const seen = parseEnvDump(readFileSync(out.file(`env-${key.id}`), "utf8"));
    // sh itself adds PWD (and may add OLDPWD/SHLVL/_): not from keypool, and never a secret.
    const fromShell = new Set(["PWD", "OLDPWD", "SHLVL", "_"]);
    const allowed = new Set<string>([...BASE_VARIABLES, "OUT_DIR", "POOL_REGION", TOKEN_VARIABLE, KEY_ID_VARIABLE]);
    const unexpected = Object.keys(seen).filter(
      (name) => !allowed.has(name) && !name.startsWith("LC_") && !fromShell.has(name),
    );
    expect(unexpected).toEqual([]);
    expect(seen).toMatchObject({
      [TOKEN_VARIABLE]: key.token,
      [KEY_ID_VARIABLE]: key.id,
      OUT_DIR: out.path,
      POOL_REGION: "eu-west",
      LC_ALL: "C.UTF-8",
      TZ: "UTC",
      PATH: process.env.PATH,
    });
    expect(leaksOf(secrets.all, [JSON.stringify(seen)])).toEqual([]);
    expect(readFileSync(out.file("asked"), "utf8")).toBe("");
    expect(leaksOf([key, ...secrets.all], [printed])).toEqual([]);
  });

  it("never shows the token in any process's argv while the probe runs (what ps shows every user)", async () => {
    using out = tempDir("keypool-probe-ps-");
    const key = canary("probe-ps");
    // A snapshot of every command line on the machine, taken by the probe itself while it runs; then a check
    // that needs the token, done with builtins ([ and printf) so it is never an exec'd program's argument.
    const cmd =
      'cat /proc/[0-9]*/cmdline > "$OUT_DIR/ps" 2>/dev/null; ' +
      `[ '{token}' = "$KEYPOOL_TOKEN" ] && printf '%s' {token} | grep -q '^sk-canary-probe-ps-' && echo valid`;
    const { run, states, printed } = await checkWith({ cmd, success_output: "valid", env: { OUT_DIR: out.path } }, [
      key,
    ]);
    expect({ code: run.code, states }).toEqual({ code: 0, states: { [key.id]: "live" } });

    const snapshot = readFileSync(out.file("ps")).toString("latin1").replaceAll("\0", " ");
    // The snapshot did see the probe's own shell (its script references the variable)…
    expect(snapshot).toContain("$KEYPOOL_TOKEN");
    // …and no command line anywhere held the token or a piece of it.
    expect(leaksOf([key], [snapshot, printed])).toEqual([]);
  });

  it("masks the token in what the probe prints, whole, JSON-escaped or in pieces", async () => {
    const key = canary("probe-echo");
    const cmd =
      'piece=$(printf %s "$KEYPOOL_TOKEN" | cut -c5-30); ' +
      'echo "denied {token} (as JSON: \\"$KEYPOOL_TOKEN\\") piece: $piece" >&2; exit 3';
    const { run, report, printed } = await checkWith({ cmd }, [key]);
    expect(run.code).toBe(0);
    expect(report?.keys[0]).toMatchObject({ status: "failed", reason: expect.stringMatching(/^exit 3: denied sk-…/) });
    expect(leaksOf([key], [printed])).toEqual([]);
    // The piece (characters 5–30) is neither the token's tail nor its middle, so look for it directly.
    expect(printed).not.toContain(key.token.slice(4, 30));
  });
});

describe("the seed's command check", () => {
  /** Answers 200 to the good key's bearer token, 401 to anything else. */
  async function meServer(good: Canary) {
    return startFakeUpstream(
      (req) => new Response(null, { status: req.headers.get("authorization") === `Bearer ${good.token}` ? 200 : 401 }),
    );
  }

  it.skipIf(!Bun.which("curl"))(
    "runs curl with %{http_code} and a quoted Bearer {token} header, as written",
    async () => {
      const good = canary("curl-good");
      const bad = canary("curl-bad");
      await using me = await meServer(good);
      const cmd = `curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer {token}' ${me.url}/me`;
      const { run, states, printed } = await checkWith({ cmd, success_output: "200" }, [good, bad]);
      expect({ code: run.code, states }).toEqual({ code: 0, states: { [good.id]: "live", [bad.id]: "failed" } });
      expect(me.calls.map((c) => c.headers.authorization).sort()).toEqual(
        [`Bearer ${bad.token}`, `Bearer ${good.token}`].sort(),
      );
      expect(leaksOf([good, bad], [printed])).toEqual([]);
    },
  );
  if (!Bun.which("curl"))
    console.warn(
      "probe-privilege: curl is not installed; the curl case is skipped (sh/printf/grep case covers the quoting)",
    );

  it("keeps the same quoting working with only sh, printf and grep", async () => {
    const good = canary("sh-good");
    const bad = canary("sh-bad");
    // Same shapes as the seed's line: %{…} inside '…', the token inside '…' after a space, a pipe and &&.
    const cmd =
      `printf '%s ' '%{http_code}' >/dev/null && printf '%s\\n' 'Authorization: Bearer {token}' ` +
      `| grep -qx 'Authorization: Bearer ${good.token}' && printf '%s' "2""00"`;
    const { run, states, printed } = await checkWith({ cmd, success_output: "200" }, [good, bad]);
    expect({ code: run.code, states }).toEqual({ code: 0, states: { [good.id]: "live", [bad.id]: "failed" } });
    expect(leaksOf([bad], [printed])).toEqual([]);
  });
});

describe("{token} in argv", () => {
  it.each([
    ["a list", { cmd: ["./probe.sh", "--key", "{token}"] }, "check.cmd[2]"],
    ["a list running a shell", { cmd: ["sh", "-c", "probe --key {token}"] }, "check.cmd[2]"],
    ["a plain string", { cmd: "./probe.sh --key={token}" }, "check.cmd"],
  ])("is refused at load in %s, exit 2, naming the field and KEYPOOL_TOKEN", async (_how, check, field) => {
    const key = canary("refused");
    const { run, printed } = await checkWith(check, [key]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`${field}: {token}`);
    expect(run.stderr).toContain("KEYPOOL_TOKEN");
    expect(leaksOf([key], [printed])).toEqual([]);
  });
});

describe("an answer to a mistake", () => {
  it("never quotes a token sent in the wrong shape or field of an admin body", async () => {
    const leak = canary("admin-body");
    await using kp = await startTestDaemon(
      YAML.stringify({ tokens_file: "tokens.txt", state_file: "state.db", server: { addr: "127.0.0.1:0" } }),
      "a,sk-test-aaaaaaaaaaaaaaaa\n",
    );
    const bodies = [{ token: [leak.token] }, { token: { value: leak.token } }, { token: "sk-x", weight: leak.token }];
    const answers: string[] = [];
    for (const body of bodies) {
      const answer = await kp.fetch("/pools/default/keys", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      expect(answer.status).toBe(400);
      answers.push(await answer.text());
    }
    expect(answers[0]).toContain("token: Expected property 'token' to be string");
    expect(leaksOf([leak], [...answers, ...kp.logs])).toEqual([]);
  });
});

describe("a failed refresh's reason", () => {
  it("masks the refresh token and the old token however the endpoint echoes them, even cut short", async () => {
    const old = canary("refresh-old");
    const refresh = canary("refresh-rt");
    // An endpoint that quotes what it got in a long description, which keypool cuts inside the refresh token.
    await using endpoint = await startFakeUpstream((_req, call) => {
      const sent = new URLSearchParams(call.body);
      const description = `${"x".repeat(90)} refresh_token ${sent.get("refresh_token")} for ${sent.get("access")}`;
      return Response.json({ error: "invalid_grant", error_description: description }, { status: 400 });
    });
    const config: RefreshConfig = {
      enabled: true,
      url: endpoint.url,
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "grant_type=refresh_token&refresh_token={refresh_token}&access={token}",
      tokenField: "access_token",
    };
    const answer = await requestNewToken(config, { token: old.token, refreshToken: refresh.token });
    const reason = answer.ok ? "" : answer.reason;
    expect({ ok: answer.ok, reason }).toEqual({
      ok: false,
      reason: expect.stringContaining("HTTP 400 (invalid_grant: "),
    });
    expect(leaksOf([old, refresh], [reason])).toEqual([]);
    for (const secret of [old.token, refresh.token]) {
      for (let i = 0; i + 12 <= secret.length; i++) expect(reason).not.toContain(secret.slice(i, i + 12));
    }
  });
});
