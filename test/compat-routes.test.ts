import { describe, expect, it } from "bun:test";
import { ManualClock } from "../src/pool/clock";
import { jsonPost, startTestDaemon } from "./helpers/daemon";

const A = "sk-test-aaaaaaaaaaaaaaaaaaaaaaaa";
const B = "sk-test-bbbbbbbbbbbbbbbbbbbbbbbb";
const TOKENS = `a,${A}\nb,${B}\n`;
// No health check, so an auth failure quarantines for quarantine_sec instead of until a probe.
const CONFIG =
  "tokens_file: tokens.txt\nstate_file: state.db\ncooldown_sec: 0\nserver:\n  addr: 127.0.0.1:0\n  api_key: compat-admin-key\n";
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
    expect([response.status, body.success, body.model, body.error.code]).toEqual([
      503,
      false,
      "default",
      "NO_KEY_AVAILABLE",
    ]);
    expect(Number(response.headers.get("retry-after"))).toBeGreaterThanOrEqual(59);
  });

  it("answers 404 with success false for a pool that does not exist", async () => {
    await using kp = await startTestDaemon(CONFIG, TOKENS);
    const response = await kp.fetch("/keys/gpt-5", auth);
    expect([response.status, await response.json()]).toEqual([
      404,
      {
        success: false,
        model: "gpt-5",
        error: { code: "UNKNOWN_POOL", message: 'pool "gpt-5" does not exist (pools: default)' },
      },
    ]);
  });
});

describe("POST /health/:pool", () => {
  const report = (kp: Awaited<ReturnType<typeof startTestDaemon>>, body: unknown) =>
    kp
      .fetch("/health/default", { ...jsonPost(body), apiKey: auth.apiKey })
      .then(async (r) => [r.status, await r.json()]);
  const stateOf = async (kp: Awaited<ReturnType<typeof startTestDaemon>>, id: string) =>
    (await (await kp.fetch("/status", auth)).json()).keys.find((k: { id: string }) => k.id === id).state;

  // Key Pool Manager's words: degraded is out for 5 min, rate_limited for 15, failed until someone acts.
  it.each([
    ["healthy", null, "live", undefined],
    ["degraded", null, "cooling", 5 * 60_000],
    ["rate_limited", null, "cooling", 15 * 60_000],
    ["failed", null, "quarantined", undefined],
    ["failed", "upstream timed out", "quarantined", undefined],
  ] as const)(
    "applies %s (error %p) to the key holding the token, for as long as the seed says",
    async (status, error, state, backInMs) => {
      const clock = new ManualClock();
      await using kp = await startTestDaemon(CONFIG, TOKENS, { clock, random: () => 0 });
      const [code, body] = await report(kp, { key: B, status, error });
      expect([code, body.success, body.model, body.id, body.state]).toEqual([200, true, "default", "b", state]);
      expect(await stateOf(kp, "b")).toBe(state);
      if (backInMs !== undefined) {
        clock.advance(backInMs - 1);
        expect(await stateOf(kp, "b")).toBe("cooling");
        clock.advance(1);
        expect(await stateOf(kp, "b")).toBe("unknown");
      }
    },
  );

  it("keeps a failed key out, however long, until it is reported healthy", async () => {
    const clock = new ManualClock();
    await using kp = await startTestDaemon(CONFIG, TOKENS, { clock });
    await report(kp, { key: B, status: "failed", error: "HTTP 401 Unauthorized" });
    clock.advance(24 * 3600_000);
    expect(await stateOf(kp, "b")).toBe("quarantined");
    expect((await report(kp, { key: B, status: "healthy", error: null }))[1].state).toBe("live");
  });

  it("rests a rate_limited key 15 minutes every time, not on a growing ladder", async () => {
    const clock = new ManualClock();
    await using kp = await startTestDaemon(CONFIG, TOKENS, { clock, random: () => 0 });
    for (let i = 0; i < 3; i++) {
      await report(kp, { key: B, status: "rate_limited" });
      clock.advance(15 * 60_000);
      expect(await stateOf(kp, "b")).toBe("unknown");
    }
  });

  it("gives back the lease GET /keys/:pool took", async () => {
    await using kp = await startTestDaemon(CONFIG, TOKENS);
    const { key } = await (await kp.fetch("/keys/default", auth)).json();
    const inFlight = async () =>
      (await (await kp.fetch("/status", auth)).json()).keys.map((k: { in_flight: number }) => k.in_flight);
    expect(await inFlight()).toContain(1);
    await report(kp, { key, status: "healthy" });
    expect(await inFlight()).toEqual([0, 0]);
  });

  it("answers 404 for a token not in the pool, without echoing it", async () => {
    await using kp = await startTestDaemon(CONFIG, TOKENS);
    const stranger = "sk-stranger-0123456789abcdef0123";
    const [code, body] = await report(kp, { key: stranger, status: "failed" });
    expect([code, body]).toEqual([
      404,
      {
        success: false,
        model: "default",
        error: { code: "UNKNOWN_KEY", message: 'pool "default" has no key with that token' },
      },
    ]);
    expect(kp.logs.join("\n")).not.toContain(stranger);
  });

  it("rejects a status it does not know", async () => {
    await using kp = await startTestDaemon(CONFIG, TOKENS);
    const [code, body] = await report(kp, { key: A, status: "sick" });
    expect([code, (body as { error: { code: string } }).error.code]).toEqual([400, "BAD_REQUEST"]);
  });
});

describe("POST and DELETE /keys/:pool", () => {
  const C = "sk-test-cccccccccccccccccccccccc";
  const send = (
    kp: Awaited<ReturnType<typeof startTestDaemon>>,
    method: "POST" | "DELETE",
    key: string,
    apiKey?: string,
  ) =>
    kp
      .fetch("/keys/default", { ...jsonPost({ key }), method, apiKey })
      .then(async (r) => [r.status, await r.json()] as const);
  const states = async (kp: Awaited<ReturnType<typeof startTestDaemon>>) =>
    Object.fromEntries(
      (await (await kp.fetch("/status", auth)).json()).keys.map((k: { id: string; state: string }) => [k.id, k.state]),
    );

  it("adds a key by its token, and removes it again, never echoing the token", async () => {
    await using kp = await startTestDaemon(CONFIG, TOKENS);
    const [added, body] = await send(kp, "POST", C, auth.apiKey);
    expect([added, { ...body, id: "(derived)" }]).toEqual([
      200,
      {
        success: true,
        model: "default",
        id: "(derived)",
        masked: "sk-…cccc",
        result: "added",
        pool: { totalKeys: 3, healthyKeys: 3 },
      },
    ]);
    expect(Object.keys(await states(kp))).toHaveLength(3);
    const [again, twice] = await send(kp, "POST", C, auth.apiKey);
    expect([again, twice.error.code]).toEqual([409, "KEY_EXISTS"]);
    const [removed, gone] = await send(kp, "DELETE", C, auth.apiKey);
    expect([removed, gone.result, gone.pool]).toEqual([200, "removed", { totalKeys: 2, healthyKeys: 2 }]);
    const [missing, unknown] = await send(kp, "DELETE", C, auth.apiKey);
    expect([missing, unknown.error.code]).toEqual([404, "UNKNOWN_KEY"]);
    expect(JSON.stringify([body, twice, gone, unknown]) + kp.logs.join("\n")).not.toContain(C);
  });

  it("disables a key the config owns instead of removing it, and POST brings it back", async () => {
    await using kp = await startTestDaemon(CONFIG, TOKENS);
    const [code, body] = await send(kp, "DELETE", B, auth.apiKey);
    expect([code, body.id, body.result]).toEqual([200, "b", "disabled"]);
    expect(await states(kp)).toEqual({ a: "unknown", b: "disabled" });
    for (let i = 0; i < 3; i++) expect((await (await kp.fetch("/keys/default", auth)).json()).key).toBe(A);
    const [back, enabled] = await send(kp, "POST", B, auth.apiKey);
    expect([back, enabled.result]).toEqual([200, "enabled"]);
    expect((await states(kp)).b).toBe("unknown");
  });

  it("re-adding a key reported failed is how an operator puts it back", async () => {
    await using kp = await startTestDaemon(CONFIG, TOKENS);
    await kp.fetch("/health/default", { ...jsonPost({ key: B, status: "failed", error: null }), apiKey: auth.apiKey });
    expect((await states(kp)).b).toBe("quarantined");
    const [code, body] = await send(kp, "POST", B, auth.apiKey);
    expect([code, body.result]).toEqual([200, "enabled"]);
    expect((await states(kp)).b).toBe("unknown");
  });

  it("are admin routes: behind the API key, and refuse a token with whitespace without quoting it", async () => {
    await using kp = await startTestDaemon(CONFIG, TOKENS);
    expect((await send(kp, "POST", C))[0]).toBe(401);
    expect((await send(kp, "DELETE", A))[0]).toBe(401);
    const spaced = "sk-secret with-space-0123456789";
    const [code, body] = await send(kp, "POST", spaced, auth.apiKey);
    // The route's own refusal, in the compatibility shape, saying what is wrong with the key.
    expect([code, body.success, body.model, body.error.code, body.error.message]).toEqual([
      400,
      false,
      "default",
      "BAD_REQUEST",
      expect.stringContaining("whitespace"),
    ]);
    expect(JSON.stringify(body)).not.toContain("with-space");
    expect((await states(kp)).a).toBe("unknown");
  });
});

describe("GET /status", () => {
  it("carries Key Pool Manager's status, timestamp and models beside keypool's own fields", async () => {
    const clock = new ManualClock();
    await using kp = await startTestDaemon(CONFIG, TOKENS, { clock });
    for (let i = 0; i < 3; i++) await kp.fetch("/keys/default", auth);
    await kp.fetch("/health/default", {
      ...jsonPost({ key: A, status: "rate_limited", error: null }),
      apiKey: auth.apiKey,
    });
    const body = await (await kp.fetch("/status", auth)).json();
    expect({ status: body.status, timestamp: body.timestamp, models: body.models }).toEqual({
      status: "ok",
      timestamp: clock.now(),
      models: {
        default: {
          totalKeys: 2,
          health: { healthy: 1, degraded: 0, failed: 0, rate_limited: 1 },
          currentIndex: expect.any(Number),
          // Three keys handed out; the one outcome reported was a failure.
          stats: { totalRequests: 3, successRate: "0.00%" },
        },
      },
    });
    // Then poolctl's fields (test/status-poolctl-fields.test.ts), then keypool's own.
    expect(Object.keys(body)).toEqual([
      "status",
      "timestamp",
      "models",
      "total",
      "live",
      "dead",
      "unknown",
      "quarantined",
      "cooling",
      "tokens",
      "pools",
      "keys",
    ]);
  });
});
