import { Database } from "bun:sqlite";
import { describe, expect, it } from "bun:test";
import { join } from "node:path";
import { parseTokensFile } from "../src/config/tokens-file";
import type { HttpCheckConfig, PoolConfig, RefreshConfig } from "../src/config/types";
import { poolSettingsOf } from "../src/daemon/pool-settings";
import { refreshKey, requestNewToken } from "../src/health/refresh";
import { ManualClock, systemClock } from "../src/pool/clock";
import { maskToken } from "../src/pool/mask";
import { MIGRATIONS } from "../src/store/sqlite/migrations";
import { SqliteStore } from "../src/store/sqlite/sqlite-store";
import type { KeyInput } from "../src/store/types";
import { type FakeUpstream, type RecordedCall, neverAnswer, startFakeUpstream } from "./helpers/fake-upstream";
import { integrityOf, openHealthPool } from "./helpers/health-pool";
import { tempDir } from "./helpers/temp-dir";

const OLD = "sk-old-0123456789abcdef";
const KEY: KeyInput = { id: "k0", token: OLD, weight: 1, refreshToken: "rt-0" };

function check(url: string): HttpCheckConfig {
  return {
    kind: "http",
    url: `${url}/check`,
    method: "GET",
    headers: { authorization: "Bearer {token}" },
    successStatus: [200],
    timeoutSec: 5,
  };
}

function refreshConfig(url: string, over: Partial<RefreshConfig> = {}): RefreshConfig {
  return {
    enabled: true,
    url: `${url}/token`,
    method: "POST",
    headers: { "content-type": "application/json" },
    body: '{"grant_type":"refresh_token","refresh_token":"{refresh_token}"}',
    tokenField: "access_token",
    refreshTokenField: "refresh_token",
    expiresInField: "expires_in",
    ...over,
  };
}

/**
 * An API plus its token endpoint. The API accepts only tokens the endpoint has issued; the endpoint
 * issues `sk-fresh-N-…` with refresh token `rt-N` and the given lifetime, unless `tokenAnswer` is set.
 */
async function startAuthUpstream(
  options: { expiresIn?: number; tokenAnswer?: (call: RecordedCall) => Response | Promise<Response> } = {},
) {
  const valid = new Set<string>();
  let issued = 0;
  const upstream = await startFakeUpstream((_req, call) => {
    if (call.path === "/token") {
      if (options.tokenAnswer) return options.tokenAnswer(call);
      issued++;
      const token = `sk-fresh-${issued}-0123456789abcdef`;
      valid.add(token);
      return Response.json({
        access_token: token,
        refresh_token: `rt-${issued}`,
        expires_in: options.expiresIn ?? 3600,
      });
    }
    return valid.has(call.headers.authorization?.slice("Bearer ".length) ?? "")
      ? new Response("ok")
      : new Response("no", { status: 401 });
  });
  return Object.assign(upstream, { valid });
}

const paths = (upstream: FakeUpstream) =>
  upstream.calls.map((c) => `${c.path} ${c.headers.authorization ?? JSON.parse(c.body).refresh_token}`);

describe("refresh from the checker", () => {
  it("refreshes a token rejected with 401, stores it, and probes with the new one", async () => {
    await using upstream = await startAuthUpstream();
    await using h = await openHealthPool({
      keys: [KEY],
      check: check(upstream.url),
      refresh: refreshConfig(upstream.url),
    });
    await h.checker.tick();

    expect(paths(upstream)).toEqual([
      `/check Bearer ${OLD}`,
      "/token rt-0",
      "/check Bearer sk-fresh-1-0123456789abcdef",
    ]);
    expect((await h.status()).k0).toMatchObject({
      state: "live",
      masked: maskToken("sk-fresh-1-0123456789abcdef"),
      consecutiveFailures: 0,
      lastCheckStatus: 200,
    });
    expect((await h.store.take("default")).token).toBe("sk-fresh-1-0123456789abcdef");
  });

  it("keeps the refreshed token across a restart while the tokens file is unchanged, and drops it when the file changes", async () => {
    await using upstream = await startAuthUpstream();
    await using h = await openHealthPool({
      keys: [KEY],
      check: check(upstream.url),
      refresh: refreshConfig(upstream.url),
    });
    await h.checker.tick();
    await h.close();

    const restarted = await h.reopen([KEY]);
    expect((await restarted.take("default")).token).toBe("sk-fresh-1-0123456789abcdef");

    const edited = await h.reopen([{ ...KEY, token: "sk-edited-0123456789abcdef" }]);
    expect((await edited.take("default")).token).toBe("sk-edited-0123456789abcdef");
    expect((await edited.status())[0]).toMatchObject({
      state: "unknown",
      reason: "token replaced",
      lastCheckStatus: null,
      nextCheckAt: null,
    });
    await restarted.close();
    await edited.close();
  });

  it("refreshes ahead of a known expiry, spending the rotated refresh token", async () => {
    await using upstream = await startAuthUpstream({ expiresIn: 200 });
    await using h = await openHealthPool({
      keys: [KEY],
      check: check(upstream.url),
      refresh: refreshConfig(upstream.url, { aheadSec: 60 }),
    });
    await h.checker.tick();
    // Expires 200 s after the refresh; the check that renews it is due 60 s before that.
    expect((await h.status()).k0!.nextCheckAt).toBe(h.clock.now() + 140_000);

    h.clock.advance(140_000);
    await h.checker.tick();
    expect(paths(upstream).slice(3)).toEqual(["/token rt-1", "/check Bearer sk-fresh-2-0123456789abcdef"]);
    expect((await h.status()).k0!.state).toBe("live");
  });

  it("quarantines the key with the endpoint's own reason, with no token in it, when the refresh is refused", async () => {
    const secret = "rt-SECRET-abcdefghijkl";
    await using upstream = await startAuthUpstream({
      tokenAnswer: () =>
        Response.json(
          { error: "invalid_grant", error_description: `refresh token ${secret} is revoked` },
          { status: 400 },
        ),
    });
    await using h = await openHealthPool({
      keys: [{ ...KEY, refreshToken: secret }],
      check: check(upstream.url),
      refresh: refreshConfig(upstream.url),
    });
    await h.checker.tick();

    expect((await h.status()).k0).toMatchObject({
      state: "quarantined",
      reason: `token refresh failed: HTTP 400 (invalid_grant: refresh token ${maskToken(secret)} is revoked)`,
      nextCheckAt: h.clock.now() + 60_000,
    });
  });

  it("keeps a key whose refresh ahead of expiry failed out of rotation, even past a rest it had", async () => {
    let refuse = false;
    const issue = () =>
      Response.json({ access_token: "sk-fresh-1-0123456789abcdef", refresh_token: "rt-1", expires_in: 200 });
    await using upstream = await startAuthUpstream({
      tokenAnswer: () => (refuse ? Response.json({ error: "invalid_grant" }, { status: 400 }) : issue()),
    });
    upstream.valid.add("sk-fresh-1-0123456789abcdef");
    await using h = await openHealthPool({
      keys: [KEY],
      check: check(upstream.url),
      refresh: refreshConfig(upstream.url),
    });
    await h.checker.tick();
    // A rate limit a caller reported leaves the key resting for 10 minutes; the renewal falls due inside that rest.
    const lease = await h.store.take("default");
    await h.store.release({ lease: lease.lease }, { ok: false, status: 429, retryAfterMs: 600_000 });
    refuse = true;
    h.clock.advance(140_000);
    await h.checker.tick();
    expect((await h.status()).k0!.reason).toBe("token refresh failed: HTTP 400 (invalid_grant)");

    h.clock.advance(600_000);
    expect((await h.status()).k0!.state).toBe("quarantined");
    await expect(h.store.take("default")).rejects.toMatchObject({ code: "NO_KEY_AVAILABLE" });
  });

  it("says how to supply a refresh token when the key has none, without calling the endpoint", async () => {
    await using upstream = await startAuthUpstream();
    await using h = await openHealthPool({
      keys: [{ id: "k0", token: OLD, weight: 1 }],
      check: check(upstream.url),
      refresh: refreshConfig(upstream.url),
    });
    await h.checker.tick();
    expect(upstream.calls.map((c) => c.path)).toEqual(["/check"]);
    expect((await h.status()).k0!.reason).toBe(
      "token refresh failed: no refresh token known for this key — add refresh_token=VALUE to its line in the tokens file",
    );
  });

  it("stop() abandons a refresh in flight and gives its lock back", async () => {
    await using upstream = await startFakeUpstream((_req, call) =>
      call.path === "/token" ? neverAnswer(_req, call) : new Response("", { status: 401 }),
    );
    await using h = await openHealthPool({
      keys: [KEY],
      check: check(upstream.url),
      refresh: refreshConfig(upstream.url),
    });
    const pass = h.checker.tick();
    await upstream.wait(2);
    await h.checker.stop();
    await pass;

    const claim = await h.store.beginRefresh("default", "k0", {
      owner: "next",
      staleToken: OLD,
      lockUntil: h.clock.now() + 1000,
    });
    expect(claim).toEqual({ status: "claimed", token: OLD, refreshToken: "rt-0" });
    await h.close();
    expect(integrityOf(h.dbPath)).toBe("ok");
  });
});

describe("requestNewToken", () => {
  const tricky = { token: 'sk-a"b\\c&d=e', refreshToken: 'rt-"}, "admin": true, "x": "' };

  it.each([
    [
      "a JSON body",
      "application/json",
      '{"refresh_token":"{refresh_token}","old":"{token}"}',
      (body: string) => JSON.parse(body),
    ],
    [
      "a form body",
      "application/x-www-form-urlencoded",
      "refresh_token={refresh_token}&old={token}",
      (body: string) => Object.fromEntries(new URLSearchParams(body)),
    ],
  ])("encodes tokens so they cannot break out of %s", async (_what, type, body, parse) => {
    await using upstream = await startFakeUpstream(() => Response.json({ access_token: "new" }));
    const answer = await requestNewToken(
      refreshConfig(upstream.url, { headers: { "content-type": type }, body }),
      tricky,
    );
    expect(answer).toEqual({ ok: true, token: "new" });
    expect(parse(upstream.calls[0]!.body)).toEqual({ refresh_token: tricky.refreshToken, old: tricky.token });
  });

  it("reads nested fields and a string lifetime", async () => {
    await using upstream = await startFakeUpstream(() =>
      Response.json({ data: { token: "new", refresh: "rt-9", ttl: "120" } }),
    );
    const answer = await requestNewToken(
      refreshConfig(upstream.url, {
        tokenField: "data.token",
        refreshTokenField: "data.refresh",
        expiresInField: "data.ttl",
      }),
      { token: OLD, refreshToken: "rt-0" },
    );
    expect(answer).toEqual({ ok: true, token: "new", refreshToken: "rt-9", expiresInSec: 120 });
  });

  it.each([
    [
      "a missing token field",
      () => Response.json({ token: "sk-leak-0123456789abcdef" }),
      'token endpoint\'s answer has no string field "access_token" — check refresh.token_field',
    ],
    ["a non-JSON answer", () => new Response("<html>"), "token endpoint answered HTTP 200 without a JSON body"],
    [
      "a redirect",
      () => new Response(null, { status: 302, headers: { location: "https://elsewhere.example/" } }),
      "HTTP 302",
    ],
    [
      "a plain-text refusal",
      () => new Response(`bad token ${OLD}\n`, { status: 401 }),
      `HTTP 401 (bad token ${maskToken(OLD)})`,
    ],
  ])("fails with a clear reason on %s", async (_what, answer, reason) => {
    await using upstream = await startFakeUpstream(answer);
    expect(await requestNewToken(refreshConfig(upstream.url), { token: OLD, refreshToken: "rt-0" })).toEqual({
      ok: false,
      reason,
    });
  });
});

describe("refresh single-flight", () => {
  const pool = (url: string): PoolConfig => ({
    name: "default",
    keys: [KEY],
    rotation: "lru",
    cooldownSec: 0,
    recheckIntervalSec: 300,
    leaseTtlSec: 300,
    refresh: refreshConfig(url),
  });

  it("lets one refresher through per key; a late one gets the winner's token instead of refreshing again", async () => {
    let answer!: () => void;
    const held = new Promise<void>((resolve) => (answer = resolve));
    await using upstream = await startFakeUpstream(async () => {
      await held;
      return Response.json({ access_token: "sk-fresh-1-0123456789abcdef", refresh_token: "rt-1" });
    });
    await using h = await openHealthPool({ keys: [KEY], refresh: refreshConfig(upstream.url) });
    const deps = (owner: string) => ({ store: h.store, clock: h.clock, owner });
    const target = { pool: "default", id: "k0", staleToken: OLD };

    const first = refreshKey(deps("a"), target, h.pool.refresh!);
    await upstream.wait(1);
    expect(await refreshKey(deps("b"), target, h.pool.refresh!)).toEqual({ status: "busy" });
    answer();
    expect(await first).toEqual({ status: "refreshed", token: "sk-fresh-1-0123456789abcdef" });
    expect(await refreshKey(deps("c"), target, h.pool.refresh!)).toEqual({
      status: "superseded",
      token: "sk-fresh-1-0123456789abcdef",
    });
    expect(upstream.calls).toHaveLength(1);
  });

  it("lets a lapsed lock be taken over", async () => {
    await using h = await openHealthPool({ keys: [KEY], pool: { refresh: refreshConfig("http://unused.invalid") } });
    const claim = (owner: string) =>
      h.store.beginRefresh("default", "k0", { owner, staleToken: OLD, lockUntil: h.clock.now() + 90_000 });
    expect((await claim("crashed")).status).toBe("claimed");
    expect((await claim("next")).status).toBe("busy");
    h.clock.advance(90_000);
    expect((await claim("next")).status).toBe("claimed");
    // The crashed owner's late answer no longer counts.
    expect(
      await h.store.finishRefresh("default", "k0", "crashed", {
        status: "refreshed",
        token: "sk-late-0123456789abcdef",
      }),
    ).toBe(false);
  });

  it("spends a refresh token once when two processes race to refresh the same key", async () => {
    let answer!: () => void;
    const held = new Promise<void>((resolve) => (answer = resolve));
    await using upstream = await startFakeUpstream(async () => {
      await held;
      return Response.json({ access_token: "sk-fresh-1-0123456789abcdef", refresh_token: "rt-1" });
    });
    using dir = tempDir();
    const dbPath = dir.file("state.db");
    const config = pool(upstream.url);
    const seed = new SqliteStore({ path: dbPath, clock: new ManualClock() });
    await seed.syncPools([{ settings: poolSettingsOf(config), keys: config.keys }]);
    await seed.close();

    const spec = JSON.stringify({
      pool: config,
      refresh: config.refresh,
      keys: config.keys,
      id: "k0",
      staleToken: OLD,
    });
    const racer = join(import.meta.dir, "helpers", "refresh-racer.ts");
    const racers = [0, 1].map(() =>
      Bun.spawn([process.execPath, racer, dbPath, spec], { stdin: "pipe", stdout: "pipe", stderr: "inherit" }),
    );
    try {
      const lines = racers.map((p) => lineReader(p.stdout));
      expect(await Promise.all(lines.map((l) => l.next()))).toEqual(["ready", "ready"]);
      for (const p of racers) {
        p.stdin.write("go\n");
        await p.stdin.flush();
      }
      const outcomes = lines.map((l) => l.next().then((line) => JSON.parse(line) as { status: string }));
      // The winner's request is held: the loser answers meanwhile, or — if both won — a second request arrives.
      await Promise.race([Promise.race(outcomes), upstream.wait(2)]);
      answer();

      expect((await Promise.all(outcomes)).map((o) => o.status).sort()).toEqual(["busy", "refreshed"]);
      expect(await Promise.all(racers.map((p) => p.exited))).toEqual([0, 0]);
      expect(upstream.calls).toHaveLength(1);
      expect(JSON.parse(upstream.calls[0]!.body)).toEqual({ grant_type: "refresh_token", refresh_token: "rt-0" });
    } finally {
      for (const p of racers) p.kill();
    }

    const after = new SqliteStore({ path: dbPath, clock: systemClock });
    await after.syncPools([{ settings: poolSettingsOf(config), keys: config.keys }]);
    expect((await after.take("default")).token).toBe("sk-fresh-1-0123456789abcdef");
    await after.close();
    expect(integrityOf(dbPath)).toBe("ok");
  });
});

describe("schema upgrade", () => {
  it("keeps what a version-1 database knew: its keys are not mistaken for replaced ones", async () => {
    using dir = tempDir();
    const dbPath = dir.file("state.db");
    const v1 = new Database(dbPath);
    v1.exec(MIGRATIONS[0]!);
    v1.exec("PRAGMA user_version = 1");
    v1.run("INSERT INTO keys (pool, id, token, health, takeable) VALUES ('default', 'k0', ?, 'live', 1)", [OLD]);
    v1.close();

    const store = new SqliteStore({ path: dbPath, clock: new ManualClock() });
    const config: PoolConfig = {
      name: "default",
      keys: [KEY],
      rotation: "lru",
      cooldownSec: 0,
      recheckIntervalSec: 300,
      leaseTtlSec: 300,
    };
    const synced = await store.syncPools([
      { settings: poolSettingsOf(config), keys: [{ id: "k0", token: OLD, weight: 1 }] },
    ]);
    expect(synced.default).toEqual({ added: [], updated: [], removed: [], kept: 1 });
    expect((await store.status())[0]).toMatchObject({ state: "live", nextCheckAt: null });
    await store.close();
  });
});

describe("tokens file refresh_token", () => {
  it("reads refresh_token=VALUE after the token or weight, keeping = inside the value", () => {
    expect(
      parseTokensFile("a,sk-aaaaaaaa,refresh_token=rt-abc==\nb,sk-bbbbbbbb,2,group=g,refresh_token=rt-b\n", "keys.txt"),
    ).toEqual([
      { id: "a", token: "sk-aaaaaaaa", weight: 1, refreshToken: "rt-abc==" },
      { id: "b", token: "sk-bbbbbbbb", weight: 2, group: "g", refreshToken: "rt-b" },
    ]);
  });

  it("rejects an empty refresh token without echoing the line", () => {
    expect(() => parseTokensFile("a,sk-aaaaaaaa,refresh_token=\n", "keys.txt")).toThrow(
      "keys.txt:1: refresh_token=VALUE needs a value without whitespace",
    );
  });
});

/** Reads a process's stdout one line at a time. */
function lineReader(stream: ReadableStream<Uint8Array>) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  return {
    async next(): Promise<string> {
      while (!buffer.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the process ended its output before a full line: ${JSON.stringify(buffer)}`);
        buffer += decoder.decode(value, { stream: true });
      }
      const end = buffer.indexOf("\n");
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + 1);
      return line;
    },
  };
}
