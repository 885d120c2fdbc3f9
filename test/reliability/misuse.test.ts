/**
 * Class 6 of issue 16: misuse is noticed. A state file deleted or replaced under a running daemon
 * stops it handing out keys (logged, /health 503, takes refused) instead of letting it lease the
 * same exclusive keys as a newcomer on the path; a loopback listener without credentials answers
 * only requests addressed to a loopback name (DNS rebinding); docs/configuration.md says which routes are public.
 * The state-file check is driven by `storeGuard.tick()`, never by waiting for its timer.
 */
import { describe, expect, it } from "bun:test";
import { chmodSync, copyFileSync, existsSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { ConfigError } from "../../src/config/errors";
import { parseConfig } from "../../src/config/load";
import { openPool } from "../../src/lib";
import { ManualClock } from "../../src/pool/clock";
import { startTestDaemon } from "../helpers/daemon";
import { startGateway, TOKENS } from "../helpers/gateway-harness";
import { tempDir } from "../helpers/temp-dir";
import { canary, leaksOf } from "./_canary";

const LEAK = canary("misuse");
const POOL_TOKENS = { a: TOKENS.a, [LEAK.id]: LEAK.token };

/** A daemon with a gateway whose keys are exclusive (one lease each), as in the issue's report. */
async function exclusiveDaemon() {
  const gw = await startGateway({
    tokens: POOL_TOKENS,
    handler: () => Response.json({ ok: true }),
    config: (fakeUrl) => ({
      tokens_file: "tokens.txt",
      state_file: "state.db",
      cooldown_sec: 0,
      max_concurrency: 1,
      server: { addr: "127.0.0.1:0" },
      upstream: { listen: "127.0.0.1:0", base_url: fakeUrl, cooldown_sec: 0 },
    }),
  });
  return {
    gw,
    kp: gw.kp,
    stateFile: gw.kp.dir.file("state.db"),
    [Symbol.asyncDispose]: () => gw[Symbol.asyncDispose](),
  };
}

function tokensOf(tokens: Record<string, string>): string {
  return Object.entries(tokens)
    .map(([id, token]) => `${id},${token}\n`)
    .join("");
}

async function errorOf(response: Response): Promise<{ status: number; code: string; message: string }> {
  const body = (await response.json()) as { error: { code: string; message: string } };
  return { status: response.status, code: body.error.code, message: body.error.message };
}

describe("a state file lost under the daemon", () => {
  it("is noticed when deleted: logged, /health 503, takes refused on the API and the gateway", async () => {
    await using d = await exclusiveDaemon();
    expect((await d.kp.fetch("/health")).status).toBe(200);
    unlinkSync(d.stateFile);
    d.kp.daemon.storeGuard.tick();

    const health = await errorOf(await d.kp.fetch("/health"));
    expect(health).toMatchObject({ status: 503, code: "STATE_FILE_LOST" });
    expect(health.message).toContain("the state file was deleted");
    expect(health.message).toContain("restart keypool");
    // The answer names no path (no answer does); the log line does.
    expect(health.message).not.toContain(d.stateFile);
    expect(await errorOf(await d.kp.fetch("/take"))).toMatchObject({ status: 503, code: "STATE_FILE_LOST" });
    const gateway = await fetch(`${d.gw.url}/v1/models`);
    expect(gateway.status).toBe(503);
    expect(((await gateway.json()) as { error: { code: string } }).error.code).toBe("state_file_lost");
    expect(d.gw.fake.calls.length).toBe(0);

    const lostLines = d.kp.logs.filter((line) => line.includes("state lost"));
    d.kp.daemon.storeGuard.tick();
    expect(d.kp.logs.filter((line) => line.includes("state lost"))).toEqual(lostLines);
    expect(lostLines).toHaveLength(1);
    expect(lostLines[0]).toContain('"level":"error"');
    expect(JSON.parse(lostLines[0]!).state_file).toBe(d.stateFile);
    expect(leaksOf([LEAK], d.kp.logs)).toEqual([]);
  });

  it("stops leasing once a second daemon on the same path has started a fresh file", async () => {
    await using d = await exclusiveDaemon();
    expect((await d.kp.fetch("/take")).status).toBe(200);
    // `rm state.db*`: a newcomer on the same path creates a fresh file, where every key is free again.
    for (const file of [d.stateFile, `${d.stateFile}-wal`, `${d.stateFile}-shm`]) unlinkSync(file);
    const tokens = tokensOf(POOL_TOKENS);
    const yaml = YAML.stringify({
      tokens_file: "tokens.txt",
      state_file: d.stateFile,
      max_concurrency: 1,
      cooldown_sec: 0,
      server: { addr: "127.0.0.1:0" },
    });
    await using second = await startTestDaemon(yaml, tokens, { autoCheck: false });
    d.kp.daemon.storeGuard.tick();
    second.daemon.storeGuard.tick();
    // Only the newcomer hands keys out now: the two never lease one exclusive key each.
    expect(await errorOf(await d.kp.fetch("/take"))).toMatchObject({ status: 503, code: "STATE_FILE_LOST" });
    expect((await second.fetch("/health")).status).toBe(200);
    expect((await second.fetch("/take")).status).toBe(200);
  });

  it("keeps a newcomer from opening a fresh file beside the -wal and -shm of the deleted one", async () => {
    await using d = await exclusiveDaemon();
    unlinkSync(d.stateFile);
    const yaml = YAML.stringify({
      tokens_file: "tokens.txt",
      state_file: d.stateFile,
      server: { addr: "127.0.0.1:0" },
    });
    const refused = await startTestDaemon(yaml, tokensOf(POOL_TOKENS), { autoCheck: false }).catch((error) => error);
    expect(refused).toBeInstanceOf(ConfigError);
    expect(refused.message).toContain(`exist without the state file ${d.stateFile}`);
    expect(refused.message).toContain("stop every keypool using it");
    expect(existsSync(d.stateFile)).toBe(false);
  });

  it("is noticed when replaced by another file (a restored backup, a copy renamed over it)", async () => {
    await using d = await exclusiveDaemon();
    copyFileSync(d.stateFile, `${d.stateFile}.copy`);
    renameSync(`${d.stateFile}.copy`, d.stateFile);
    d.kp.daemon.storeGuard.tick();
    const health = await errorOf(await d.kp.fetch("/health"));
    expect(health).toMatchObject({ status: 503, code: "STATE_FILE_LOST" });
    expect(health.message).toContain("replaced by another file");
    expect(await errorOf(await d.kp.fetch("/take"))).toMatchObject({ status: 503, code: "STATE_FILE_LOST" });
  });

  it("is noticed when only the write-ahead log is deleted (its commits would vanish for everyone else)", async () => {
    await using d = await exclusiveDaemon();
    unlinkSync(`${d.stateFile}-wal`);
    d.kp.daemon.storeGuard.tick();
    const health = await errorOf(await d.kp.fetch("/health"));
    expect(health).toMatchObject({ status: 503, code: "STATE_FILE_LOST" });
    expect(health.message).toContain("write-ahead log (its -wal file) was deleted");
  });

  it("serves again once the file it has open is back at the path", async () => {
    await using d = await exclusiveDaemon();
    renameSync(d.stateFile, `${d.stateFile}.moved`);
    d.kp.daemon.storeGuard.tick();
    expect((await d.kp.fetch("/health")).status).toBe(503);
    renameSync(`${d.stateFile}.moved`, d.stateFile);
    d.kp.daemon.storeGuard.tick();
    expect((await d.kp.fetch("/health")).status).toBe(200);
    expect((await d.kp.fetch("/take")).status).toBe(200);
    expect(d.kp.logs.some((line) => line.includes("back in place"))).toBe(true);
  });

  it("warns when a daemon with other pools on the same file removes this one's pool", async () => {
    using shared = tempDir();
    const stateFile = shared.file("shared.db");
    const config = (pool: string) =>
      YAML.stringify({
        state_file: stateFile,
        server: { addr: "127.0.0.1:0" },
        pools: { [pool]: { tokens_file: "tokens.txt" } },
      });
    await using first = await startTestDaemon(config("alpha"), tokensOf(POOL_TOKENS), { autoCheck: false });
    await using second = await startTestDaemon(config("beta"), tokensOf(POOL_TOKENS), { autoCheck: false });
    const warnings = second.logs.filter((line) => line.includes("was in the store but is not in this config"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('pool \\"alpha\\"');
    expect(warnings[0]).toContain("must run the same pools");
    expect(first.logs.some((line) => line.includes("is not in this config"))).toBe(false);
    expect(leaksOf([LEAK], [...first.logs, ...second.logs])).toEqual([]);
  });

  it("warns once when the state file is opened to other users", async () => {
    await using d = await exclusiveDaemon();
    chmodSync(d.stateFile, 0o644);
    d.kp.daemon.storeGuard.tick();
    d.kp.daemon.storeGuard.tick();
    const warnings = d.kp.logs.filter((line) => line.includes("open to other users"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("chmod 600");
    expect((await d.kp.fetch("/health")).status).toBe(200);
  });

  it("stops a library process's takes too, with no timer of its own", async () => {
    using dir = tempDir();
    const clock = new ManualClock(Date.parse("2026-12-01T00:00:00Z"));
    const stateFile = dir.file("lib.db");
    await using pool = await openPool({ keys: [TOKENS.a, LEAK.token], stateFile, clock, maxConcurrency: 1 });
    await pool.take();
    unlinkSync(stateFile);
    // The take looks at the file at most once a second.
    clock.advance(1000);
    const refused = await pool.take().catch((error) => error);
    expect(refused).toMatchObject({ code: "STATE_FILE_LOST" });
    expect(String(refused.message)).not.toContain(LEAK.token);
  });
});

describe("the Host check on loopback listeners without credentials (DNS rebinding)", () => {
  const yaml = (server: Record<string, unknown> = {}) =>
    YAML.stringify({
      tokens_file: "tokens.txt",
      state_file: "state.db",
      cooldown_sec: 0,
      server: { addr: "127.0.0.1:0", ...server },
    });

  it("refuses a request to another name with 403 HOST_NOT_ALLOWED saying what to do, on every route", async () => {
    await using kp = await startTestDaemon(yaml(), tokensOf(POOL_TOKENS));
    for (const path of ["/take", "/status", "/health", "/metrics"]) {
      const refused = await errorOf(await kp.fetch(path, { headers: { host: "evil.example" } }));
      expect(refused).toMatchObject({ status: 403, code: "HOST_NOT_ALLOWED" });
      expect(refused.message).toContain('Host "evil.example"');
      expect(refused.message).toContain("set server.api_key");
      expect(refused.message).toContain("server.allowed_hosts");
    }
    // A rebinding page's port is its own; the name is what gives it away.
    const port = new URL(kp.url).port;
    expect((await kp.fetch("/take", { headers: { host: `evil.example:${port}` } })).status).toBe(403);
    expect(leaksOf([LEAK], kp.logs)).toEqual([]);
  });

  it("serves loopback names: localhost:PORT, 127.0.0.1, [::1], *.localhost, and no Host at all", async () => {
    await using kp = await startTestDaemon(yaml(), tokensOf(POOL_TOKENS));
    const port = new URL(kp.url).port;
    for (const host of [
      `localhost:${port}`,
      `127.0.0.1:${port}`,
      `[::1]:${port}`,
      "LOCALHOST",
      "localhost.",
      "dashboard.localhost",
    ]) {
      expect({ host, status: (await kp.fetch("/take", { headers: { host } })).status }).toEqual({ host, status: 200 });
    }
    // HTTP/1.0 without Host: no browser sends that.
    expect(await rawStatus(kp.url, ["GET /health HTTP/1.0"])).toBe(200);
  });

  it("serves the names in server.allowed_hosts", async () => {
    await using kp = await startTestDaemon(yaml({ allowed_hosts: ["keypool.internal"] }), tokensOf(POOL_TOKENS));
    expect((await kp.fetch("/status", { headers: { host: "keypool.internal:8787" } })).status).toBe(200);
    expect((await kp.fetch("/status", { headers: { host: "evil.example" } })).status).toBe(403);
  });

  it("does not check Host once server.api_key is set", async () => {
    const apiKey = `ak-${"0123456789abcdef".repeat(2)}`;
    await using kp = await startTestDaemon(yaml({ api_key: apiKey }), tokensOf(POOL_TOKENS));
    expect((await kp.fetch("/status", { apiKey, headers: { host: "evil.example" } })).status).toBe(200);
    expect((await kp.fetch("/status", { headers: { host: "evil.example" } })).status).toBe(401);
  });

  it("refuses another name on a gateway without client_keys, in the OpenAI error shape, before any upstream call", async () => {
    await using gw = await startGateway({ tokens: POOL_TOKENS, handler: () => Response.json({ ok: true }) });
    const refused = await fetch(`${gw.url}/v1/models`, { headers: { host: "evil.example" } });
    expect(refused.status).toBe(403);
    const body = (await refused.json()) as { error: { code: string; message: string; type: string } };
    expect(body.error).toMatchObject({ code: "host_not_allowed", type: "keypool_error" });
    expect(body.error.message).toContain("set upstream.client_keys");
    expect(gw.fake.calls.length).toBe(0);
    const port = new URL(gw.url).port;
    expect((await fetch(`${gw.url}/v1/models`, { headers: { host: `localhost:${port}` } })).status).toBe(200);
    expect(gw.fake.calls.length).toBe(1);
  });

  it("does not check Host on a gateway whose pools all require client_keys", async () => {
    const clientKey = `ck-${"fedcba9876543210".repeat(2)}`;
    await using gw = await startGateway({
      tokens: POOL_TOKENS,
      handler: () => Response.json({ ok: true }),
      upstream: { client_keys: [clientKey] },
    });
    const served = await fetch(`${gw.url}/v1/models`, {
      headers: { host: "evil.example", authorization: `Bearer ${clientKey}` },
    });
    expect(served.status).toBe(200);
  });
});

/** The status of a request written byte for byte (fetch always adds a Host). */
async function rawStatus(url: string, lines: string[]): Promise<number> {
  const { hostname, port } = new URL(url);
  const ended = Promise.withResolvers<string>();
  let received = "";
  await Bun.connect({
    hostname,
    port: Number(port),
    socket: {
      open: (socket) => void socket.write(`${lines.join("\r\n")}\r\nconnection: close\r\n\r\n`),
      data: (_socket, data) => void (received += data.toString()),
      close: () => ended.resolve(received),
      error: (_socket, error) => ended.reject(error),
    },
  });
  return Number((await ended.promise).split(" ")[1]);
}

describe("credentials and names a config gets wrong", () => {
  function configErrorOf(yaml: string, tokens: string): ConfigError {
    using dir = tempDir();
    writeFileSync(dir.file("tokens.txt"), tokens);
    try {
      parseConfig(yaml, { baseDir: dir.path, env: {} });
    } catch (error) {
      if (error instanceof ConfigError) return error;
      throw error;
    }
    throw new Error("the config was accepted");
  }

  it("refuses a server.api_key or a client key that is also a pooled key, naming the key by id only", () => {
    const yaml = YAML.stringify({
      tokens_file: "tokens.txt",
      server: { api_key: LEAK.token },
      upstream: { base_url: "http://127.0.0.1:1", client_keys: ["ck-own-0123456789abcdef", LEAK.token] },
    });
    const error = configErrorOf(yaml, tokensOf(POOL_TOKENS));
    expect(error.issues).toEqual([
      `server.api_key: is the same value as key "${LEAK.id}" of pool "default" — give the API a key of its own`,
      `upstream.client_keys.1: is the same value as key "${LEAK.id}" of pool "default" — clients need keys of their own, not upstream keys`,
    ]);
    expect(leaksOf([LEAK], [error.message])).toEqual([]);
  });

  it("refuses an allowed host written as a URL or with a port", () => {
    const yaml = YAML.stringify({
      tokens_file: "tokens.txt",
      server: { allowed_hosts: ["ok.example", "http://keypool.internal:8787"] },
    });
    expect(configErrorOf(yaml, tokensOf(POOL_TOKENS)).issues).toEqual([
      'server.allowed_hosts.1: "http://keypool.internal:8787" is not a host name — write the name alone, e.g. keypool.internal (no scheme, port or path)',
    ]);
  });

  it("says so when a reload changes server settings, which only a restart applies", async () => {
    const apiKey = `ak-${"0123456789abcdef".repeat(2)}`;
    const yaml = (server: Record<string, unknown>) =>
      YAML.stringify({ tokens_file: "tokens.txt", state_file: "state.db", server });
    await using kp = await startTestDaemon(yaml({ addr: "127.0.0.1:0" }), tokensOf(POOL_TOKENS), { autoCheck: false });
    writeFileSync(kp.configPath, yaml({ addr: "127.0.0.1:0", api_key: apiKey }));
    expect((await kp.fetch("/reload", { method: "POST" })).status).toBe(200);
    const warnings = kp.logs.filter((line) => line.includes("server settings changed"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("next restart");
    expect(warnings[0]).not.toContain(apiKey);
  });

  it("warns at start when the API listens beyond loopback without server.api_key, or with a short one", async () => {
    const open = YAML.stringify({ tokens_file: "tokens.txt", state_file: "state.db", server: { addr: "0.0.0.0:0" } });
    await using kp = await startTestDaemon(open, tokensOf(POOL_TOKENS), { autoCheck: false });
    expect(kp.logs.filter((line) => line.includes("the API is open"))).toHaveLength(1);
    const short = YAML.stringify({
      tokens_file: "tokens.txt",
      state_file: "state.db",
      server: { addr: "127.0.0.1:0", api_key: "letmein" },
    });
    await using weak = await startTestDaemon(short, tokensOf(POOL_TOKENS), { autoCheck: false });
    const warnings = weak.logs.filter((line) => line.includes("server.api_key is shorter"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).not.toContain("letmein");
  });
});

describe("which routes need server.api_key", () => {
  // Pinned route by route: a new route is behind the key unless it is added here, and to docs/configuration.md.
  const PUBLIC = [
    "GET /health",
    "GET /metrics",
    "GET /ui",
    "GET /swagger",
    "GET /swagger/swagger-ui.css",
    "GET /swagger/swagger-ui-bundle.js",
    "GET /openapi.json",
  ];

  /** The paths the configuration page's `server.api_key` row names as public; `/x/*` stands for everything under /x/. */
  function readmePublicPaths(): string[] {
    const readme = readFileSync(join(import.meta.dir, "../../docs/configuration.md"), "utf8");
    const row = readme.split("\n").find((line) => line.startsWith("| `server.api_key` |"));
    if (!row) throw new Error("docs/configuration.md has no server.api_key row in its configuration table");
    const claim = row.slice(0, row.indexOf("needs"));
    return [...claim.matchAll(/`(\/[^`]*)`/g)].map((m) => m[1]!);
  }

  it("answers 401 without the key on every route but the public ones, which docs/configuration.md names", async () => {
    const apiKey = `ak-${"0123456789abcdef".repeat(2)}`;
    await using kp = await startTestDaemon(
      YAML.stringify({
        tokens_file: "tokens.txt",
        state_file: "state.db",
        server: { addr: "127.0.0.1:0", api_key: apiKey },
      }),
      tokensOf(POOL_TOKENS),
      { autoCheck: false },
    );
    const routes = kp.daemon.app.routes.map((route) => `${route.method} ${route.path}`);
    expect(routes).toEqual(expect.arrayContaining(PUBLIC));
    const answers: Record<string, "public" | "needs the key"> = {};
    for (const route of routes) {
      const [method, path] = route.split(" ") as [string, string];
      const response = await kp.fetch(path.replaceAll(/:[a-z]+/g, "default"), { method });
      await response.arrayBuffer();
      answers[route] = response.status === 401 ? "needs the key" : "public";
    }
    expect(answers).toEqual(
      Object.fromEntries(routes.map((route) => [route, PUBLIC.includes(route) ? "public" : "needs the key"])),
    );

    const readme = readmePublicPaths();
    const namedByReadme = (path: string) =>
      readme.some((p) => (p.endsWith("/*") ? path.startsWith(p.slice(0, -1)) : path === p));
    expect(routes.filter((route) => namedByReadme(route.split(" ")[1]!))).toEqual(
      routes.filter((route) => PUBLIC.includes(route)),
    );
  });
});
