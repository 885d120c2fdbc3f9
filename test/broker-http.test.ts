import { describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { jsonPost, startTestDaemon } from "./helpers/daemon";

const CANARY = "sk-canary-7f3e9a1b2c4d5e6f8a9b0c1d2e3f";
const TOKENS = `a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\nb,sk-test-bbbbbbbbbbbbbbbbbbbbbbbb\ncanary,${CANARY}\n`;
const BASE = `tokens_file: tokens.txt\nstate_file: state.db\ncooldown_sec: 0\nserver:\n  addr: 127.0.0.1:0\n`;

describe("GET /take", () => {
  it("hands out a key with a lease that /release accepts", async () => {
    await using kp = await startTestDaemon(BASE, TOKENS);
    const take = await kp.fetch("/take");
    expect(take.status).toBe(200);
    const body = await take.json();
    expect(Object.keys(body).sort()).toEqual(["expires_at", "id", "lease", "pool", "token"]);
    expect(body.pool).toBe("default");
    const release = await kp.fetch("/release", jsonPost({ lease: body.lease, ok: true }));
    expect([release.status, await release.json()]).toEqual([
      200,
      { ok: true, pool: "default", id: body.id, state: "live", reason: null },
    ]);
  });

  it("returns 503 with Retry-After when every key is cooling", async () => {
    await using kp = await startTestDaemon(BASE.replace("cooldown_sec: 0", "cooldown_sec: 45"), TOKENS);
    for (let i = 0; i < 3; i++) expect((await kp.fetch("/take")).status).toBe(200);
    const response = await kp.fetch("/take");
    expect(response.status).toBe(503);
    expect(Number(response.headers.get("retry-after"))).toBeGreaterThanOrEqual(44);
    expect((await response.json()).error.code).toBe("NO_KEY_AVAILABLE");
  });

  it("answers 404 for a pool that does not exist", async () => {
    await using kp = await startTestDaemon(BASE, TOKENS);
    const response = await kp.fetch("/take?pool=nope");
    expect([response.status, await response.json()]).toEqual([
      404,
      { error: { code: "UNKNOWN_POOL", message: 'pool "nope" does not exist (pools: default)' } },
    ]);
  });
});

describe("POST /release", () => {
  it.each([
    [
      "malformed JSON",
      { method: "POST", headers: { "content-type": "application/json" }, body: "{nope" },
      400,
      "BAD_REQUEST",
    ],
    ["ok of the wrong type", jsonPost({ lease: "x", ok: "yes" }), 400, "BAD_REQUEST"],
    ["neither lease nor id", jsonPost({ ok: true }), 400, "BAD_REQUEST"],
    ["an unknown field", jsonPost({ id: "a", ok: true, extra: 1 }), 400, "BAD_REQUEST"],
    ["an unknown lease", jsonPost({ lease: "ls_nope", ok: true }), 404, "UNKNOWN_LEASE"],
    ["an unknown id", jsonPost({ id: "nope", ok: true }), 404, "UNKNOWN_KEY"],
  ] as const)("rejects %s", async (_, init, status, code) => {
    await using kp = await startTestDaemon(BASE, TOKENS);
    const response = await kp.fetch("/release", init as RequestInit);
    const body = await response.json();
    expect([response.status, body.error.code, typeof body.error.message]).toEqual([status, code, "string"]);
  });

  it("takes numbers written as strings, as the schema allows, and still refuses ones out of range", async () => {
    await using kp = await startTestDaemon(BASE, TOKENS);
    const released = await kp.fetch(
      "/release",
      jsonPost({ id: "a", ok: false, status: "429", input_tokens: "1200", output_tokens: "34" }),
    );
    expect([released.status, (await released.json()).state]).toEqual([200, "cooling"]);
    const usage = await (await kp.fetch("/pools/default/usage")).json();
    const a = usage.keys.find((k: { id: string }) => k.id === "a");
    expect([a.usage.input_tokens, a.usage.output_tokens]).toEqual([1200, 34]);
    const wrong = await kp.fetch("/release", jsonPost({ id: "b", ok: false, status: "42" }));
    expect([wrong.status, (await wrong.json()).error.code]).toEqual([400, "BAD_REQUEST"]);
  });

  it("quarantines a key released with 401 and stops handing it out", async () => {
    await using kp = await startTestDaemon(BASE, TOKENS);
    await kp.fetch("/release", jsonPost({ id: "a", ok: false, status: 401 }));
    for (let i = 0; i < 6; i++) expect((await (await kp.fetch("/take")).json()).id).not.toBe("a");
  });

  it("refuses bodies over 1 MiB with 413", async () => {
    await using kp = await startTestDaemon(BASE, TOKENS);
    const response = await kp.fetch("/release", jsonPost({ id: "a", ok: true, pad: "x".repeat(1024 * 1024) }));
    expect([response.status, (await response.json()).error.code]).toEqual([413, "PAYLOAD_TOO_LARGE"]);
  });
});

describe("GET /status", () => {
  it("counts keys by state and shows each with its reason, never its token", async () => {
    await using kp = await startTestDaemon(BASE, TOKENS);
    await kp.fetch("/release", jsonPost({ id: "b", ok: false, status: 403 }));
    const body = await (await kp.fetch("/status")).json();
    expect(body.pools.default).toEqual({
      total: 3,
      counts: { unknown: 2, live: 0, cooling: 0, quarantined: 1, dead: 0, disabled: 0 },
      usage: expect.objectContaining({ requests: 1, success_rate: 0, cache_hit_ratio: null }),
      spend: null,
    });
    const b = body.keys.find((k: { id: string }) => k.id === "b");
    expect(b).toMatchObject({
      id: "b",
      pool: "default",
      masked: "sk-…bbbb",
      state: "quarantined",
      reason: "auth failure (HTTP 403); no health check, retried after quarantine_sec",
      errors: 1,
    });
    expect(JSON.stringify(body)).not.toContain("sk-test-");
  });
});

describe("server.api_key", () => {
  const withKey = `${BASE}  api_key: admin-secret-123\n`;

  it("requires the key on every route but /health", async () => {
    await using kp = await startTestDaemon(withKey, TOKENS);
    expect((await kp.fetch("/health")).status).toBe(200);
    for (const path of ["/take", "/status"]) {
      const response = await kp.fetch(path);
      expect([response.status, (await response.json()).error.code]).toEqual([401, "UNAUTHORIZED"]);
    }
    expect((await kp.fetch("/take", { apiKey: "admin-secret-12" })).status).toBe(401);
    expect((await kp.fetch("/take", { apiKey: "admin-secret-123" })).status).toBe(200);
    expect((await kp.fetch("/status", { headers: { authorization: "Bearer admin-secret-123" } })).status).toBe(200);
  });
});

describe("POST /reload", () => {
  it("applies a changed tokens file and keeps the state of kept keys", async () => {
    await using kp = await startTestDaemon(BASE, TOKENS);
    await kp.fetch("/release", jsonPost({ id: "a", ok: false, status: 401 }));
    writeFileSync(
      kp.dir.file("tokens.txt"),
      "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\nc,sk-test-cccccccccccccccccccccccc\n",
    );
    const response = await kp.fetch("/reload", { method: "POST" });
    expect(await response.json()).toEqual({
      ok: true,
      pools: { default: { added: 1, updated: 0, removed: 2, kept: 1 } },
    });
    const states = Object.fromEntries(
      (await (await kp.fetch("/status")).json()).keys.map((k: { id: string; state: string }) => [k.id, k.state]),
    );
    expect(states).toEqual({ a: "quarantined", c: "unknown" });
  });

  it("rejects an invalid file and keeps serving the running pool", async () => {
    await using kp = await startTestDaemon(BASE, TOKENS);
    writeFileSync(kp.configPath, `${BASE}rotation: lru2\n`);
    const response = await kp.fetch("/reload", { method: "POST" });
    const body = await response.json();
    expect([response.status, body.error.code]).toEqual([400, "INVALID_CONFIG"]);
    expect(body.error.message).toContain('rotation: "lru2" is not one of lru, round_robin, random, weighted');
    expect((await kp.fetch("/take")).status).toBe(200);
  });
});

describe("secrets", () => {
  it("never puts a token in a log line, /status or an error body", async () => {
    await using kp = await startTestDaemon(BASE, TOKENS);
    const seen: string[] = [];
    const record = async (response: Response) => seen.push(await response.text());
    await record(await kp.fetch("/status"));
    await record(await kp.fetch(`/take?pool=${CANARY}`));
    await record(await kp.fetch("/release", jsonPost({ id: "canary", ok: false, status: 401 })));
    await record(await kp.fetch("/release", jsonPost({ id: "canary", ok: "no" })));
    await record(await kp.fetch("/status"));
    await kp.fetch("/reload", { method: "POST" });
    expect(seen.filter((text) => text.includes(CANARY) && !text.includes('pool \\"'))).toEqual([]);
    expect(kp.logs.filter((line) => line.includes(CANARY))).toEqual([]);
  });
});
