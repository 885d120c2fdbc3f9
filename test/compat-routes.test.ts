import { describe, expect, it } from "bun:test";
import { outcomeOf } from "../src/http/compat-service";
import { jsonPost, startTestDaemon } from "./helpers/daemon";

const A = "sk-test-aaaaaaaaaaaaaaaaaaaaaaaa";
const B = "sk-test-bbbbbbbbbbbbbbbbbbbbbbbb";
const TOKENS = `a,${A}\nb,${B}\n`;
// No health check, so an auth failure quarantines for quarantine_sec instead of until a probe.
const CONFIG = "tokens_file: tokens.txt\nstate_file: state.db\ncooldown_sec: 0\nserver:\n  addr: 127.0.0.1:0\n  api_key: compat-admin-key\n";
const auth = { apiKey: "compat-admin-key" };

describe("GET /keys/:pool", () => {
  it("hands out a key in the shape similar tools use", async () => {
    await using kp = await startTestDaemon(CONFIG, TOKENS);
    const response = await kp.fetch("/keys/default", auth);
    const body = await response.json();
    expect([response.status, { ...body, key: "(checked below)" }]).toEqual([
      200,
      { success: true, model: "default", key: "(checked below)", pool: { totalKeys: 2, healthyKeys: 2 } },
    ]);
    expect([A, B]).toContain(body.key);
  });

  it("needs the API key like every other route", async () => {
    await using kp = await startTestDaemon(CONFIG, TOKENS);
    expect((await kp.fetch("/keys/default")).status).toBe(401);
    expect((await kp.fetch("/health/default", jsonPost({ key: A, status: "healthy" }))).status).toBe(401);
  });

  it("answers 503 with success false and Retry-After when every key is resting", async () => {
    await using kp = await startTestDaemon(CONFIG.replace("cooldown_sec: 0", "cooldown_sec: 60"), TOKENS);
    for (let i = 0; i < 2; i++) expect((await kp.fetch("/keys/default", auth)).status).toBe(200);
    const response = await kp.fetch("/keys/default", auth);
    const body = await response.json();
    expect([response.status, body.success, body.model, body.error.code]).toEqual([503, false, "default", "NO_KEY_AVAILABLE"]);
    expect(Number(response.headers.get("retry-after"))).toBeGreaterThanOrEqual(59);
  });

  it("answers 404 with success false for a pool that does not exist", async () => {
    await using kp = await startTestDaemon(CONFIG, TOKENS);
    const response = await kp.fetch("/keys/gpt-5", auth);
    expect([response.status, await response.json()]).toEqual([
      404,
      { success: false, model: "gpt-5", error: { code: "UNKNOWN_POOL", message: 'pool "gpt-5" does not exist (pools: default)' } },
    ]);
  });
});

describe("POST /health/:pool", () => {
  const report = (kp: Awaited<ReturnType<typeof startTestDaemon>>, body: unknown) =>
    kp.fetch("/health/default", { ...jsonPost(body), apiKey: auth.apiKey }).then(async (r) => [r.status, await r.json()]);

  it.each([
    ["healthy", undefined, { state: "live", reason: null }],
    ["degraded", undefined, { state: "live", reason: null, note: "degraded is counted as a success: the key stays in rotation" }],
    ["rate_limited", undefined, { state: "cooling" }],
    ["failed", "HTTP 401 Unauthorized: invalid api key", { state: "quarantined" }],
    ["failed", "upstream timed out", { state: "cooling" }],
  ] as const)("applies %s (error %p) to the key holding the token", async (status, error, expected) => {
    await using kp = await startTestDaemon(CONFIG, TOKENS);
    const [code, body] = await report(kp, { key: B, status, ...(error ? { error } : {}) });
    expect(code).toBe(200);
    expect(body).toMatchObject({ success: true, model: "default", id: "b", ...expected });
    const status_ = await (await kp.fetch("/status", auth)).json();
    expect(status_.keys.find((k: { id: string }) => k.id === "b").state).toBe(expected.state);
  });

  it("gives back the lease GET /keys/:pool took", async () => {
    await using kp = await startTestDaemon(CONFIG, TOKENS);
    const { key } = await (await kp.fetch("/keys/default", auth)).json();
    const inFlight = async () => (await (await kp.fetch("/status", auth)).json()).keys.map((k: { in_flight: number }) => k.in_flight);
    expect(await inFlight()).toContain(1);
    await report(kp, { key, status: "healthy" });
    expect(await inFlight()).toEqual([0, 0]);
  });

  it("answers 404 for a token not in the pool, without echoing it", async () => {
    await using kp = await startTestDaemon(CONFIG, TOKENS);
    const stranger = "sk-stranger-0123456789abcdef0123";
    const [code, body] = await report(kp, { key: stranger, status: "failed" });
    expect([code, body]).toEqual([404, { success: false, model: "default", error: { code: "UNKNOWN_KEY", message: 'pool "default" has no key with that token' } }]);
    expect(kp.logs.join("\n")).not.toContain(stranger);
  });

  it("rejects a status it does not know", async () => {
    await using kp = await startTestDaemon(CONFIG, TOKENS);
    const [code, body] = await report(kp, { key: A, status: "sick" });
    expect([code, (body as { error: { code: string } }).error.code]).toEqual([400, "BAD_REQUEST"]);
  });
});

describe("outcomeOf", () => {
  it.each([
    ["healthy", "", { ok: true }],
    ["degraded", "slow", { ok: true }],
    ["rate_limited", "", { ok: false, status: 429 }],
    ["failed", "403 Forbidden", { ok: false, status: 401 }],
    ["failed", "Incorrect API key provided", { ok: false, status: 401 }],
    ["failed", "Rate limit reached for gpt-4", { ok: false, status: 429 }],
    ["failed", "socket hang up", { ok: false, status: 500 }],
  ] as const)("maps %s with %p", (status, error, expected) => {
    expect(outcomeOf(status, error)).toEqual(expected);
  });
});
