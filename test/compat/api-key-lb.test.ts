/**
 * api-key-lb's quickstart (seed 003), run verbatim against keypool: `setup --keys --target --port`,
 * an environment-only start on API_KEYS and TARGET, its curl (which sends no JSON content-type),
 * sticky sessions, 429 fallback with COOLDOWN_MS, GET /health on the gateway port, `status`, `stop`,
 * and config.json's place in the order flags → environment → file → defaults.
 *
 * The service manager is never touched: a `systemctl` script first on PATH records what setup asks of it.
 */
import { describe, expect, it } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { configFromApiKeyLb } from "../../src/config/api-key-lb";
import { findConfig } from "../../src/config/find-config";
import { patchHermes, patchOpenCode } from "../../src/setup/api-key-lb-setup";
import { deriveKeyId } from "../../src/config/tokens-file";
import { leaksOf } from "../reliability/_canary";
import { type FakeUpstream, startFakeUpstream } from "../helpers/fake-upstream";
import { runKeypool } from "../helpers/run-keypool";
import { type SpawnedDaemon, spawnDaemon } from "../helpers/spawn-daemon";
import { tempDir } from "../helpers/temp-dir";

const HERMES = `model:
  # the z.ai coding plan
  base_url: https://api.z.ai/api/coding/paas/v4
  default: glm-4.6
`;

const OPENCODE = `{
  "provider": {
    "zai": {
      "options": {
        "baseURL": "https://api.z.ai/api/coding/paas/v4"
      }
    },
    "local": {
      "options": {
        "baseURL": "http://localhost:11434/v1"
      }
    }
  }
}
`;

/** A HOME with Hermes' and OpenCode's configs, and a bin directory whose `systemctl` only logs its arguments. */
function fakeHome(dir: ReturnType<typeof tempDir>) {
  const home = dir.file("home");
  mkdirSync(join(home, ".hermes"), { recursive: true });
  mkdirSync(join(home, ".config", "opencode"), { recursive: true });
  writeFileSync(join(home, ".hermes", "config.yaml"), HERMES);
  writeFileSync(join(home, ".config", "opencode", "opencode.json"), OPENCODE);
  const bin = dir.file("bin");
  mkdirSync(bin);
  writeFileSync(join(bin, "systemctl"), `#!/bin/sh\necho "$@" >> ${dir.file("systemctl.log")}\n`);
  chmodSync(join(bin, "systemctl"), 0o755);
  const env = { HOME: home, PATH: `${bin}:${process.env.PATH}` };
  return { home, env, systemctlLog: () => readFileSync(dir.file("systemctl.log"), "utf8") };
}

describe("keypool setup with api-key-lb's flags", () => {
  it("saves the config, shows each diff, patches Hermes and OpenCode with a backup, installs and starts the service", async () => {
    if (process.platform !== "linux") return;
    using dir = tempDir();
    const { home, env, systemctlLog } = fakeHome(dir);
    const quickstart = ["setup", "--keys", "sk-key1,sk-key2", "--target", "https://api.z.ai", "--port", "4577"];
    const result = await runKeypool(quickstart, { env, cwd: dir.path });
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain("sk-key");
    expect(result.stderr).not.toContain("sk-key");

    const configPath = join(home, ".config", "api-key-lb", "config.json");
    const saved = JSON.parse(readFileSync(configPath, "utf8"));
    expect(saved).toEqual({ keys: ["sk-key1", "sk-key2"], target: "https://api.z.ai", port: 4577 });
    expect(statSync(configPath).mode & 0o777).toBe(0o600);
    expect(result.stdout).toContain(
      "saved ~/.config/api-key-lb/config.json (2 keys, target https://api.z.ai, port 4577)",
    );

    // The diff comes before the write, and the file keeps its comment and layout.
    const hermesDiff =
      "-  base_url: https://api.z.ai/api/coding/paas/v4\n" + "+  base_url: http://127.0.0.1:4577/api/coding/paas/v4\n";
    expect(result.stdout).toContain(hermesDiff);
    expect(result.stdout.indexOf(hermesDiff)).toBeLessThan(result.stdout.indexOf("wrote ~/.hermes/config.yaml"));
    const hermes = readFileSync(join(home, ".hermes", "config.yaml"), "utf8");
    expect(hermes).toBe(HERMES.replace("https://api.z.ai", "http://127.0.0.1:4577"));
    const opencode = JSON.parse(readFileSync(join(home, ".config", "opencode", "opencode.json"), "utf8"));
    expect(opencode.provider).toEqual({
      zai: { options: { baseURL: "http://127.0.0.1:4577/api/coding/paas/v4" } },
      local: { options: { baseURL: "http://localhost:11434/v1" } },
    });
    expect(result.stdout).toContain('+        "baseURL": "http://127.0.0.1:4577/api/coding/paas/v4"');
    const backups = (sub: string) =>
      readdirSync(join(home, sub))
        .filter((f) => f.includes(".keypool-backup-"))
        .map((f) => readFileSync(join(home, sub, f), "utf8"));
    expect(backups(".hermes")).toEqual([HERMES]);
    expect(backups(".config/opencode")).toEqual([OPENCODE]);

    const unit = readFileSync(join(home, ".config", "systemd", "user", "keypool-api-key-lb.service"), "utf8");
    expect(unit).toContain(` proxy -c ${configPath}\n`);
    expect(unit).toContain("WantedBy=default.target");
    expect(systemctlLog()).toBe("--user daemon-reload\n--user enable --now keypool-api-key-lb\n");
  });

  it("takes -k/-t/-p, keeps what the saved config had, and leaves a client config that points elsewhere alone", async () => {
    if (process.platform !== "linux") return;
    using dir = tempDir();
    const { home, env } = fakeHome(dir);
    mkdirSync(join(home, ".config", "api-key-lb"), { recursive: true });
    const before = { keys: "old1,old2", target: "https://api.z.ai", cooldown_ms: 5000 };
    writeFileSync(join(home, ".config", "api-key-lb", "config.json"), JSON.stringify(before));
    const result = await runKeypool(["setup", "-k", "sk-new1", "-t", "https://openrouter.ai/api/v1", "-p", "4600"], {
      env,
    });
    expect(result.code).toBe(0);
    expect(JSON.parse(readFileSync(join(home, ".config", "api-key-lb", "config.json"), "utf8"))).toEqual({
      keys: ["sk-new1"],
      target: "https://openrouter.ai/api/v1",
      cooldown_ms: 5000,
      port: 4600,
    });
    expect(result.stdout).toContain("~/.hermes/config.yaml: no base URL in it points at openrouter.ai — left alone");
    expect(readFileSync(join(home, ".hermes", "config.yaml"), "utf8")).toBe(HERMES);
  });

  it("refuses a setup without --target with exit 2, naming the flag, and writes nothing", async () => {
    using dir = tempDir();
    const { home, env } = fakeHome(dir);
    const result = await runKeypool(["setup", "--keys", "sk-key1,sk-key2"], { env });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--target is required");
    expect(existsSync(join(home, ".config", "api-key-lb"))).toBe(false);
    expect(readFileSync(join(home, ".hermes", "config.yaml"), "utf8")).toBe(HERMES);
  });

  it("still makes keypool's own client setup when none of api-key-lb's flags is given", async () => {
    using dir = tempDir();
    const { env } = fakeHome(dir);
    const pool = {
      KEYPOOL_POOL_X_KEYS: "sk-x-aaaaaaaaaaaaaaaaaaaa",
      KEYPOOL_POOL_X_BASE_URL: "https://api.openai.com",
    };
    const result = await runKeypool(["setup"], { env: { ...env, ...pool }, cwd: dir.path });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("no known client config file found");
  });
});

describe("the client patches", () => {
  const proxy = "http://127.0.0.1:4577";

  it("change only a base URL on the target's own host, keeping its path, quotes and the rest of the file", () => {
    const hermes = [
      "model:",
      '  base_url: "https://API.Z.AI/api/v4"',
      "  fallback_base_url: https://api.z.ai/v1",
      "other:",
      "  base_url: https://api.z.ai.example.com/v1",
      "  base_url: https://api.z.ai:8443/v1 # pinned port",
      "",
    ].join("\n");
    expect(patchHermes(hermes, "api.z.ai", proxy).split("\n")).toEqual([
      "model:",
      `  base_url: "${proxy}/api/v4"`,
      "  fallback_base_url: https://api.z.ai/v1",
      "other:",
      "  base_url: https://api.z.ai.example.com/v1",
      `  base_url: ${proxy}/v1 # pinned port`,
      "",
    ]);
  });

  it("leave an OpenCode file with comments alone, saying why, and keep a baseURL's query", () => {
    expect(patchOpenCode('{\n  // mine\n  "provider": {}\n}', "api.z.ai", proxy)).toEqual({
      unreadable: expect.stringContaining("comments"),
    });
    const text = '{"provider":{"z":{"options":{"baseURL":"https://api.z.ai/v4?team=1"}}}}';
    expect(patchOpenCode(text, "api.z.ai", proxy)).toBe(
      `{"provider":{"z":{"options":{"baseURL":"${proxy}/v4?team=1"}}}}`,
    );
  });
});

const KEY_A = `sk-lb-a-${crypto.randomUUID().replaceAll("-", "")}`;
const KEY_B = `sk-lb-b-${crypto.randomUUID().replaceAll("-", "")}`;
const CANARIES = [
  { id: "a", token: KEY_A },
  { id: "b", token: KEY_B },
];

/** `API_KEYS=… TARGET=… keypool start` in a temp HOME, and the gateway's URL from its log. */
async function startFromEnv(
  home: string,
  upstream: FakeUpstream,
  env: Record<string, string> = {},
): Promise<{ kp: SpawnedDaemon; gateway: string }> {
  const kp = await spawnDaemon(
    ["start"],
    // The broker API's port is keypool's own addition: port 0 here, so the test binds no fixed port.
    { HOME: home, API_KEYS: `${KEY_A},${KEY_B}`, TARGET: upstream.url, PORT: "0", KEYPOOL_ADDR: "127.0.0.1:0", ...env },
    { cleanEnv: true },
  );
  const line = await kp.waitForLog(/keypool gateway listening/);
  return { kp, gateway: JSON.parse(line).url };
}

/** The seed's curl: `-d` with no -H content-type, so curl labels the JSON as a form. */
function curl(gateway: string, body: unknown, contentType: string | null = "application/x-www-form-urlencoded") {
  return fetch(`${gateway}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: "Bearer anything", ...(contentType ? { "content-type": contentType } : {}) },
    body: new TextEncoder().encode(JSON.stringify(body)),
  });
}

const keyOf = (authorization: string | undefined) =>
  authorization === `Bearer ${KEY_A}` ? "a" : authorization === `Bearer ${KEY_B}` ? "b" : authorization;

describe("keypool start on API_KEYS and TARGET", () => {
  it("forwards the seed's curl with a key of the pool in place of the client's, and the body untouched", async () => {
    using dir = tempDir();
    await using upstream = await startFakeUpstream(() => Response.json({ id: "chatcmpl-1" }));
    const { kp, gateway } = await startFromEnv(dir.file("home"), upstream);
    await using _kp = kp;
    const body = { model: "gpt-4", messages: [{ role: "user", content: "hi" }] };
    const response = await curl(gateway, body);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ id: "chatcmpl-1" });
    expect(upstream.calls[0]).toMatchObject({
      method: "POST",
      path: "/v1/chat/completions",
      body: JSON.stringify(body),
    });
    expect(["a", "b"]).toContain(keyOf(upstream.calls[0]!.headers.authorization) ?? "none");
    // A body that is not JSON goes through as it came.
    expect((await fetch(`${gateway}/v1/files`, { method: "POST", body: "not json {" })).status).toBe(200);
    expect(upstream.calls[1]!.body).toBe("not json {");
  });

  it("sends one session to one key, whether curl labels the body a form or sends no content-type at all", async () => {
    using dir = tempDir();
    await using upstream = await startFakeUpstream(() => Response.json({ ok: true }));
    const { kp, gateway } = await startFromEnv(dir.file("home"), upstream);
    await using _kp = kp;
    const chat = (extra: Record<string, unknown>) => ({
      model: "gpt-4",
      messages: [{ role: "user", content: "hi" }],
      ...extra,
    });
    const sources = [
      chat({ session_id: "s-1" }),
      chat({ sessionId: "s-1" }),
      chat({ conversation_id: "s-2" }),
      chat({ conversationId: "s-2" }),
      chat({ thread_id: "s-3" }),
      { model: "gpt-4", messages: [{ role: "user", content: "hi", metadata: { session_id: "s-4" } }] },
      {
        model: "gpt-4",
        messages: [
          { role: "system", content: "You are Hermes." },
          { role: "user", content: "hi" },
        ],
      },
    ];
    for (const body of sources) {
      const before = upstream.calls.length;
      for (const contentType of ["application/x-www-form-urlencoded", null, "application/x-www-form-urlencoded"]) {
        expect((await curl(gateway, body, contentType)).status).toBe(200);
      }
      const keys = upstream.calls.slice(before).map((c) => keyOf(c.headers.authorization));
      expect({ body, keys: new Set(keys).size }).toEqual({ body, keys: 1 });
    }
    // session_id and sessionId name the same session, as conversation_id and conversationId do.
    const keyAt = (n: number) => keyOf(upstream.calls[n]!.headers.authorization);
    expect([keyAt(3), keyAt(9)]).toEqual([keyAt(0), keyAt(6)]);
  });

  it("falls back to the other key on a 429, and the throttled key cools for the model for COOLDOWN_MS", async () => {
    using dir = tempDir();
    await using upstream = await startFakeUpstream(() => Response.json({ ok: true }));
    const { kp, gateway } = await startFromEnv(dir.file("home"), upstream, { COOLDOWN_MS: "120000" });
    await using _kp = kp;
    const body = { model: "gpt-4", session_id: "agent-1", messages: [{ role: "user", content: "hi" }] };
    await curl(gateway, body);
    const sticky = upstream.calls[0]!.headers.authorization;
    upstream.setHandler((_, call) =>
      call.headers.authorization === sticky ? new Response("slow down", { status: 429 }) : Response.json({ ok: true }),
    );

    const before = Date.now();
    const response = await curl(gateway, body);
    const after = Date.now();
    expect(response.status).toBe(200);
    expect(upstream.calls.slice(1).map((c) => c.headers.authorization === sticky)).toEqual([true, false]);

    // The request named gpt-4: the 429 rests gpt-4 on that key (a rate limit's scope is the model), not the key.
    const { events } = (await (await fetch(`${kp.url}/events`)).json()) as {
      events: Array<{ model?: string; to: string; until: string | null }>;
    };
    const rests = events.filter((e) => e.to === "cooling");
    expect(rests.map((e) => e.model)).toEqual(["gpt-4"]);
    const until = Date.parse(rests[0]!.until!);
    // Every rest is shortened at random by up to 10%, so keys that failed together do not return together.
    expect(until).toBeGreaterThanOrEqual(before + 120_000 * 0.9 - 1000);
    expect(until).toBeLessThanOrEqual(after + 120_000 + 1000);
    // While it cools, the session's requests go to the other key.
    await curl(gateway, body);
    expect(upstream.calls.at(-1)!.headers.authorization).not.toBe(sticky);
  });

  it("answers GET /health on the gateway port itself, with per-key stats and no token", async () => {
    using dir = tempDir();
    await using upstream = await startFakeUpstream(() =>
      Response.json({ ok: true }, { headers: { "x-cache": "HIT" } }),
    );
    const { kp, gateway } = await startFromEnv(dir.file("home"), upstream);
    await using _kp = kp;
    await curl(gateway, { model: "gpt-4", session_id: "s-1", messages: [] });
    await upstream.wait(1);

    const response = await fetch(`${gateway}/health`);
    expect(response.status).toBe(200);
    const text = await response.text();
    const health = JSON.parse(text);
    expect(upstream.calls.map((c) => c.path)).toEqual(["/v1/chat/completions"]);
    expect(health).toMatchObject({ status: "ok", target: upstream.url, sessions: 1, uptime_ms: expect.any(Number) });
    const used = health.keys.find((k: { requests: number }) => k.requests === 1);
    expect(health.keys).toHaveLength(2);
    expect(used).toMatchObject({ errors: 0, cache_hits: 1, status: "ready", sessions: 1 });
    expect(health.keys.map((k: { id: string }) => k.id).sort()).toEqual(
      [deriveKeyId(KEY_A), deriveKeyId(KEY_B)].sort(),
    );
    const masked = [`sk-…${KEY_A.slice(-4)}`, `sk-…${KEY_B.slice(-4)}`];
    expect(health.keys.map((k: { key: string }) => k.key).sort()).toEqual(masked.sort());
    expect(leaksOf(CANARIES, [text, kp.log(), kp.stdout()])).toEqual([]);
  });

  it("reports through keypool status, says it already runs on a second start, and stops on keypool stop", async () => {
    using dir = tempDir();
    const home = dir.file("home");
    await using upstream = await startFakeUpstream(() => Response.json({ ok: true }));
    const { kp, gateway } = await startFromEnv(home, upstream);
    await using _kp = kp;
    await curl(gateway, { model: "gpt-4", messages: [] });
    const env = { HOME: home, API_KEYS: `${KEY_A},${KEY_B}`, TARGET: upstream.url, PORT: new URL(gateway).port };

    const status = await runKeypool(["status"], { env, cwd: dir.path });
    expect(status.code).toBe(0);
    expect(status.stdout).toContain("  Status: ok\n");
    expect(status.stdout).toContain(`  Target: ${upstream.url}\n`);
    expect(status.stdout).toMatch(
      /Key #\S+ \(sk-…\w{4}\)\n {4}Requests: 1 {2}Errors: 0 {2}Cache hits: 0 {2}Status: ready/,
    );
    expect(leaksOf(CANARIES, [status.stdout, status.stderr])).toEqual([]);

    const again = await runKeypool(["start"], { env, cwd: dir.path });
    expect(again).toMatchObject({
      code: 0,
      stdout: `already running on port ${new URL(gateway).port} (2 keys, 0 sessions)\n`,
    });

    const stop = await runKeypool(["stop"], { env, cwd: dir.path });
    expect(stop).toMatchObject({ code: 0, stdout: `stopped keypool (PID ${kp.proc.pid})\n` });
    expect(await kp.proc.exited).toBe(0);
    expect((await runKeypool(["stop"], { env, cwd: dir.path })).stdout).toBe("keypool is not running\n");
    const down = await runKeypool(["status"], { env, cwd: dir.path });
    expect(down.code).toBe(1);
    expect(down.stderr).toContain(
      `keypool is not running on port ${new URL(gateway).port} — start it with: keypool start`,
    );
  });
});

describe("api-key-lb's config.json", () => {
  const KEYS = "sk-file-aaaaaaaaaaaaaaaa,sk-file-bbbbbbbbbbbbbbbb";

  function saved(dir: ReturnType<typeof tempDir>, name: string, fields: Record<string, unknown>): string {
    const path = dir.file(name);
    mkdirSync(join(path, ".."), { recursive: true });
    writeFileSync(path, JSON.stringify(fields));
    return path;
  }

  it("is read from ~/.config/api-key-lb, under the environment, over the defaults", () => {
    using dir = tempDir();
    const home = dir.file("home");
    saved(dir, "home/.config/api-key-lb/config.json", {
      keys: KEYS,
      target: "https://api.z.ai",
      port: 5000,
      cooldown_ms: 90000,
    });
    const cwd = dir.file("work");
    mkdirSync(cwd);
    const upstreamOf = (env: Record<string, string>) =>
      findConfig({ cwd, env: { HOME: home, ...env } }).pools.default!.upstream!;
    expect(upstreamOf({})).toMatchObject({ baseUrl: "https://api.z.ai", listen: "127.0.0.1:5000" });
    const router = "https://openrouter.ai/api/v1";
    expect(upstreamOf({ PORT: "6000", TARGET: router })).toMatchObject({ baseUrl: router, listen: "127.0.0.1:6000" });
    // An empty variable counts as unset, as in api-key-lb.
    expect(upstreamOf({ PORT: "" }).listen).toBe("127.0.0.1:5000");
    const keys = findConfig({ cwd, env: { HOME: home, API_KEYS: "sk-env-cccccccccccccccc" } }).pools.default!.keys;
    expect(keys.map((k) => k.token)).toEqual(["sk-env-cccccccccccccccc"]);
  });

  it("takes the seed's defaults where neither sets a value", () => {
    using dir = tempDir();
    const config = findConfig({ cwd: dir.path, env: { HOME: dir.path, API_KEYS: KEYS } });
    expect(config.pools.default!.upstream).toMatchObject({
      baseUrl: "https://api.openai.com",
      listen: "127.0.0.1:4577",
    });
    expect(config.stateFile).toBe(join(dir.path, ".local", "state", "keypool-api-key-lb", "keypool.db"));
  });

  it("is found by --config, then API_KEY_LB_CONFIG, then ./api-key-lb.json, then ~/.config/api-key-lb/config.json", () => {
    using dir = tempDir();
    const home = dir.file("home");
    const cwd = dir.file("work");
    saved(dir, "home/.config/api-key-lb/config.json", { keys: KEYS, port: 4001 });
    const portOf = (options: { path?: string; env?: Record<string, string> }) =>
      findConfig({ cwd, path: options.path, env: { HOME: home, ...options.env } }).pools.default!.upstream!.listen;
    mkdirSync(cwd);
    expect(portOf({})).toBe("127.0.0.1:4001");
    saved(dir, "work/api-key-lb.json", { keys: KEYS, port: 4002 });
    expect(portOf({})).toBe("127.0.0.1:4002");
    const named = saved(dir, "named.json", { keys: KEYS, port: 4003 });
    expect(portOf({ env: { API_KEY_LB_CONFIG: named } })).toBe("127.0.0.1:4003");
    const flagged = saved(dir, "flagged.json", { keys: KEYS, port: 4004 });
    expect(portOf({ path: flagged, env: { API_KEY_LB_CONFIG: named } })).toBe("127.0.0.1:4004");
  });

  it("gives session_ttl_ms to the sticky sessions (needs env-config's SESSION_TTL_MS)", () => {
    using dir = tempDir();
    const path = saved(dir, "c.json", { keys: KEYS, session_ttl_ms: 120000 });
    expect(configFromApiKeyLb({ path, env: { HOME: dir.path } }).pools.default!.session?.ttlSec).toBe(120);
  });

  it("runs the service's command, keypool proxy -c config.json, with the file's keys and target", async () => {
    using dir = tempDir();
    await using upstream = await startFakeUpstream(() => Response.json({ ok: true }));
    const path = saved(dir, "home/.config/api-key-lb/config.json", {
      keys: [KEY_A, KEY_B],
      target: upstream.url,
      port: 0,
    });
    const env = { HOME: dir.file("home"), KEYPOOL_ADDR: "127.0.0.1:0" };
    await using kp = await spawnDaemon(["proxy", "-c", path], env, { cleanEnv: true });
    const gateway = JSON.parse(await kp.waitForLog(/keypool gateway listening/)).url;
    expect((await curl(gateway, { model: "gpt-4", messages: [] })).status).toBe(200);
    expect(["a", "b"]).toContain(keyOf(upstream.calls[0]!.headers.authorization) ?? "none");
    expect(leaksOf(CANARIES, [kp.log(), kp.stdout()])).toEqual([]);
  });

  it("names the file and the field when a value is of the wrong kind, and exits 2", async () => {
    using dir = tempDir();
    const path = saved(dir, "bad.json", { keys: KEYS, port: "forty" });
    expect(() => configFromApiKeyLb({ path, env: { HOME: dir.path } })).toThrow(
      `${path}: "port" must be a number, e.g. 4577 or 60000`,
    );
    const result = await runKeypool(["start", "--config", path], { env: { HOME: dir.path } });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${path}: "port" must be a number`);
    expect(result.stderr).not.toContain("sk-file");
  });
});
