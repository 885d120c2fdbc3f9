import { describe, expect, it } from "bun:test";
import { configFromEnv } from "../../src/config/env-config";
import { deriveKeyId } from "../../src/config/tokens-file";
import { createDaemon } from "../../src/daemon/create-daemon";
import { createLogger } from "../../src/log";
import { ManualClock } from "../../src/pool/clock";
import { startFakeUpstream } from "../helpers/fake-upstream";
import { canary, leaksOf } from "../reliability/_canary";
import { spawnDaemon } from "../helpers/spawn-daemon";
import { tempDir } from "../helpers/temp-dir";

/**
 * Key Pool Manager's README (seed 001), run against keypool: its environment, its routes, its
 * request bodies. Only KEY_POOL_PORT differs (0 instead of 8769), and the bodies are sent as
 * application/json, as Key Pool Manager's own clients send them.
 */

// "Running Locally" and "Adding Keys", verbatim.
const SEED_ENV = {
  GPT_4_KEYS: "sk-proj-xxx,sk-proj-yyy",
  CLAUDE_3_OPUS_KEYS: "sk-ant-xxx,sk-ant-yyy",
  MISTRAL_LARGE_KEYS: "xxx,yyy",
  HEALTH_CHECK_INTERVAL: "30000",
  KEY_POOL_HOST: "127.0.0.1",
  KEY_POOL_PORT: "0",
};

const json = (method: string, body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method,
  headers: { "content-type": "application/json", ...headers },
  body: JSON.stringify(body),
});

/** Where a round-robin goes after `token`'s key: the next position in the pool's /status order. */
function after(status: { keys: Array<{ pool: string; id: string }> }, pool: string, token: string): number {
  const keys = status.keys.filter((k) => k.pool === pool);
  return (keys.findIndex((k) => k.id === deriveKeyId(token)) + 1) % keys.length;
}

async function startSeedDaemon(extra: Record<string, string> = {}) {
  const dir = tempDir();
  const kp = await spawnDaemon(["serve"], { ...SEED_ENV, ...extra }, { cwd: dir.path, cleanEnv: true });
  const call = async (path: string, init?: RequestInit) => {
    const response = await fetch(`${kp.url}${path}`, init);
    return { status: response.status, body: await response.json() };
  };
  return {
    kp,
    call,
    async [Symbol.asyncDispose]() {
      await kp[Symbol.asyncDispose]();
      dir[Symbol.dispose]();
    },
  };
}

describe("Key Pool Manager's quickstart against keypool", () => {
  it("GET /keys/:model hands out a healthy key, five times in a row from a two-key pool", async () => {
    await using seed = await startSeedDaemon();
    const answers = await Promise.all([0, 1, 2, 3, 4].map(() => seed.call("/keys/gpt-4")));
    for (const { status, body } of answers) {
      expect([status, body.success, body.model, body.pool]).toEqual([
        200,
        true,
        "gpt-4",
        { totalKeys: 2, healthyKeys: 2 },
      ]);
      expect(["sk-proj-xxx", "sk-proj-yyy"]).toContain(body.key);
    }
    const take = await Promise.all([0, 1, 2, 3, 4].map(() => seed.call("/take?pool=claude-3-opus")));
    expect(take.map((t) => t.status)).toEqual([200, 200, 200, 200, 200]);
    expect(seed.kp.log()).not.toContain("sk-proj-xxx");
  });

  it("POST /health/:model takes each of the seed's statuses, with error null", async () => {
    await using seed = await startSeedDaemon();
    const report = (model: string, key: string, status: string) =>
      seed.call(`/health/${model}`, json("POST", { key, status, error: null }));
    expect((await report("gpt-4", "sk-proj-xxx", "healthy")).status).toBe(200);
    expect((await report("gpt-4", "sk-proj-yyy", "degraded")).body).toMatchObject({
      success: true,
      model: "gpt-4",
      state: "cooling",
      reason: "reported degraded; back in 5m",
    });
    expect((await report("claude-3-opus", "sk-ant-xxx", "rate_limited")).body.reason).toBe(
      "reported rate_limited; back in 15m",
    );
    expect((await report("mistral-large", "xxx", "failed")).body.state).toBe("quarantined");
    // The pool still answers with its healthy key, and says how many are healthy.
    expect((await seed.call("/keys/gpt-4")).body).toEqual({
      success: true,
      model: "gpt-4",
      key: "sk-proj-xxx",
      pool: { totalKeys: 2, healthyKeys: 1 },
    });

    const { status, body } = await seed.call("/status");
    expect([status, body.status, typeof body.timestamp]).toEqual([200, "ok", "number"]);
    // One outcome reported per key so far: claude's and mistral's were failures, gpt-4's one of two.
    expect(body.models).toEqual({
      "claude-3-opus": {
        totalKeys: 2,
        health: { healthy: 1, degraded: 0, failed: 0, rate_limited: 1 },
        currentIndex: after(body, "claude-3-opus", "sk-ant-xxx"),
        stats: { totalRequests: 0, successRate: "0.00%" },
      },
      "gpt-4": {
        totalKeys: 2,
        health: { healthy: 1, degraded: 1, failed: 0, rate_limited: 0 },
        currentIndex: after(body, "gpt-4", "sk-proj-xxx"),
        stats: { totalRequests: 1, successRate: "50.00%" },
      },
      "mistral-large": {
        totalKeys: 2,
        health: { healthy: 1, degraded: 0, failed: 1, rate_limited: 0 },
        currentIndex: after(body, "mistral-large", "xxx"),
        stats: { totalRequests: 0, successRate: "0.00%" },
      },
    });
    expect((await seed.call("/health")).status).toBe(200);
  });

  it("POST and DELETE /keys/:model add and remove keys with the seed's bodies, echoing no token", async () => {
    await using seed = await startSeedDaemon();
    const added = await seed.call("/keys/gpt-4", json("POST", { key: "sk-proj-new-key" }));
    expect([added.status, added.body.result, added.body.pool]).toEqual([
      200,
      "added",
      { totalKeys: 3, healthyKeys: 3 },
    ]);
    await seed.call("/keys/gpt-4", json("POST", { key: "sk-proj-old-key" }));
    const removed = await seed.call("/keys/gpt-4", json("DELETE", { key: "sk-proj-old-key" }));
    expect([removed.status, removed.body.result, removed.body.pool.totalKeys]).toEqual([200, "removed", 3]);
    // A key from GPT_4_KEYS is switched off: the variable would bring it back at the next start.
    const envKey = await seed.call("/keys/gpt-4", json("DELETE", { key: "sk-proj-yyy" }));
    expect([envKey.status, envKey.body.result]).toEqual([200, "disabled"]);
    const served = await Promise.all([0, 1, 2, 3].map(() => seed.call("/keys/gpt-4")));
    expect(new Set(served.map((s) => s.body.key))).toEqual(new Set(["sk-proj-xxx", "sk-proj-new-key"]));
    const everything = JSON.stringify([added.body, removed.body, envKey.body]) + seed.kp.log();
    for (const token of ["sk-proj-new-key", "sk-proj-old-key", "sk-proj-yyy"]) expect(everything).not.toContain(token);
  });

  it("keeps keys added through the API, and environment keys taken out, as they were across a restart", async () => {
    using dir = tempDir();
    const start = () => spawnDaemon(["serve"], SEED_ENV, { cwd: dir.path, cleanEnv: true });
    {
      await using kp = await start();
      await fetch(`${kp.url}/keys/gpt-4`, json("POST", { key: "sk-proj-new-key" }));
      await fetch(`${kp.url}/keys/gpt-4`, json("DELETE", { key: "sk-proj-yyy" }));
    }
    await using kp = await start();
    const keys = (await (await fetch(`${kp.url}/status?pool=gpt-4`)).json()).keys;
    const stateOf = (token: string) => keys.find((k: { id: string }) => k.id === deriveKeyId(token))?.state;
    expect([keys.length, stateOf("sk-proj-new-key"), stateOf("sk-proj-yyy"), stateOf("sk-proj-xxx")]).toEqual([
      3,
      "unknown",
      "disabled",
      "unknown",
    ]);
  });

  it("keeps the admin routes behind KEYPOOL_API_KEY when one is set", async () => {
    await using seed = await startSeedDaemon({ KEYPOOL_API_KEY: "kpm-admin-secret" });
    expect((await seed.call("/keys/gpt-4", json("POST", { key: "sk-proj-new-key" }))).status).toBe(401);
    expect((await seed.call("/keys/gpt-4", json("DELETE", { key: "sk-proj-xxx" }))).status).toBe(401);
    const allowed = await seed.call(
      "/keys/gpt-4",
      json("POST", { key: "sk-proj-new-key" }, { authorization: "Bearer kpm-admin-secret" }),
    );
    expect(allowed.status).toBe(200);
    expect(seed.kp.log()).not.toContain("the API is open");
  });

  it("warns when it listens beyond loopback without an API key (the seed's default host is 0.0.0.0)", async () => {
    await using seed = await startSeedDaemon({ KEY_POOL_HOST: "0.0.0.0" });
    expect(seed.kp.log()).toContain('"msg":"the API is open: it listens beyond loopback and server.api_key is not set');
  });
});

describe("Key Pool Manager's routes and tokens", () => {
  it("put no token in any answer but GET /keys/:model's, nor in the log, /status, /events or /metrics", async () => {
    const env = canary("kpm-env");
    const added = canary("kpm-added");
    await using seed = await startSeedDaemon({ GPT_4_KEYS: `sk-proj-xxx,${env.token}` });
    const texts: string[] = [];
    const keep = async (path: string, init?: RequestInit) => {
      const response = await fetch(`${seed.kp.url}${path}`, init);
      texts.push(`${response.status} ${JSON.stringify([...response.headers])} ${await response.text()}`);
    };
    // Upstream errors often quote the key they refused.
    await keep(
      "/health/gpt-4",
      json("POST", { key: env.token, status: "failed", error: `401 invalid api key ${env.token}` }),
    );
    await keep("/health/gpt-4", json("POST", { key: `${env.token}x`, status: "healthy", error: null }));
    await keep("/keys/gpt-4", json("POST", { key: added.token }));
    await keep("/keys/gpt-4", json("POST", { key: added.token }));
    await keep("/keys/gpt-4", json("DELETE", { key: added.token }));
    await keep("/keys/gpt-4", json("DELETE", { key: added.token }));
    await keep("/keys/gpt-4", json("DELETE", { key: env.token }));
    await keep("/keys/gpt-4", json("POST", { key: env.token }));
    await keep("/keys/gpt-5", json("POST", { key: added.token }));
    for (const path of ["/status", "/status?pool=gpt-4", "/events", "/metrics", "/pools/gpt-4/keys"]) await keep(path);
    expect(texts.filter((t) => t.startsWith("200")).length).toBeGreaterThanOrEqual(9);
    expect(leaksOf([env, added], [...texts, seed.kp.log(), seed.kp.stdout()])).toEqual([]);
  });
});

describe("Key Pool Manager's recovery times, on an environment-configured daemon with an injected clock", () => {
  it("brings degraded keys back after 5 minutes and rate-limited ones after 15; failed ones stay out", async () => {
    using dir = tempDir();
    const clock = new ManualClock();
    const config = configFromEnv({ ...SEED_ENV, KEYPOOL_STATE_FILE: ":memory:" }, dir.path);
    const daemon = await createDaemon(config, {
      clock,
      port: 0,
      autoCheck: false,
      random: () => 0,
      logger: createLogger({ level: "error", write: () => {} }),
    });
    await daemon.start();
    try {
      const post = (model: string, key: string, status: string) =>
        fetch(`${daemon.url}/health/${model}`, json("POST", { key, status, error: null })).then((r) => r.json());
      await post("gpt-4", "sk-proj-xxx", "degraded");
      await post("claude-3-opus", "sk-ant-xxx", "rate_limited");
      await post("mistral-large", "xxx", "failed");
      const health = async () => {
        const models = (await (await fetch(`${daemon.url}/status`)).json()).models;
        return Object.fromEntries(
          Object.entries(models).map(([m, s]) => [m, (s as { health: Record<string, number> }).health]),
        );
      };
      const of = (degraded: number, rateLimited: number) => ({
        "gpt-4": { healthy: 2 - degraded, degraded, failed: 0, rate_limited: 0 },
        "claude-3-opus": { healthy: 2 - rateLimited, degraded: 0, failed: 0, rate_limited: rateLimited },
        "mistral-large": { healthy: 1, degraded: 0, failed: 1, rate_limited: 0 },
      });
      expect(await health()).toEqual(of(1, 1));
      clock.advance(5 * 60_000);
      expect(await health()).toEqual(of(0, 1));
      clock.advance(10 * 60_000);
      expect(await health()).toEqual(of(0, 0));
      clock.advance(7 * 86_400_000);
      expect((await health())["mistral-large"]).toEqual({ healthy: 1, degraded: 0, failed: 1, rate_limited: 0 });
    } finally {
      await daemon.stop();
    }
  });
});

// HOME is the test's own: an API_KEYS pool keeps its state under ~/.local/state, as api-key-lb users expect.
describe("api-key-lb's API_KEYS: a two-key pool from the environment", () => {
  it("forwards five requests in a row, all answered, with the keys injected", async () => {
    await using upstream = await startFakeUpstream(() => Response.json({ id: "chatcmpl-1", choices: [] }));
    using dir = tempDir();
    await using kp = await spawnDaemon(
      ["serve", "--port", "0"],
      {
        API_KEYS: "sk-key1,sk-key2",
        TARGET: upstream.url,
        PORT: "0",
        COOLDOWN_MS: "60000",
        SESSION_TTL_MS: "3600000",
        HOME: dir.path,
      },
      { cwd: dir.path, cleanEnv: true },
    );
    const gateway = JSON.parse(await kp.waitForLog(/keypool gateway listening/)).url as string;
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const response = await fetch(
        `${gateway}/v1/chat/completions`,
        json(
          "POST",
          { model: "gpt-4", messages: [{ role: "user", content: `hi ${i}` }] },
          { authorization: "Bearer anything" },
        ),
      );
      statuses.push(response.status);
      await response.body?.cancel();
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200]);
    expect(new Set(upstream.calls.map((c) => c.headers.authorization))).toEqual(
      new Set(["Bearer sk-key1", "Bearer sk-key2"]),
    );
  });

  it("keeps a session on one key (api-key-lb's sticky routing)", async () => {
    await using upstream = await startFakeUpstream(() => Response.json({ choices: [] }));
    using dir = tempDir();
    await using kp = await spawnDaemon(
      ["serve", "--port", "0"],
      { API_KEYS: "sk-key1,sk-key2", TARGET: upstream.url, PORT: "0", HOME: dir.path },
      { cwd: dir.path, cleanEnv: true },
    );
    const gateway = JSON.parse(await kp.waitForLog(/keypool gateway listening/)).url as string;
    for (let i = 0; i < 4; i++) {
      const response = await fetch(
        `${gateway}/v1/chat/completions`,
        json("POST", { model: "gpt-4", session_id: "conv-1", messages: [] }),
      );
      expect(response.status).toBe(200);
      await response.body?.cancel();
    }
    expect(new Set(upstream.calls.map((c) => c.headers.authorization)).size).toBe(1);
  });

  it("rests a key's model for COOLDOWN_MS after a 429 without Retry-After, and answers from the other key meanwhile", async () => {
    let calls = 0;
    await using upstream = await startFakeUpstream(() =>
      ++calls === 1 ? new Response("slow down", { status: 429 }) : Response.json({ choices: [] }),
    );
    using dir = tempDir();
    await using kp = await spawnDaemon(
      ["serve", "--port", "0"],
      { API_KEYS: "sk-key1,sk-key2", TARGET: upstream.url, PORT: "0", COOLDOWN_MS: "20000", HOME: dir.path },
      { cwd: dir.path, cleanEnv: true },
    );
    const gateway = JSON.parse(await kp.waitForLog(/keypool gateway listening/)).url as string;
    const response = await fetch(`${gateway}/v1/chat/completions`, json("POST", { model: "gpt-4", messages: [] }));
    expect(response.status).toBe(200);
    const throttled = upstream.calls[0]!.headers.authorization!.replace("Bearer ", "");
    // The request named gpt-4: the rest is that (key, model) pair's (a rate limit's scope is the model).
    const { events } = (await (await fetch(`${kp.url}/events?key=${deriveKeyId(throttled)}`)).json()) as {
      events: Array<{ at: string; model?: string; to: string; until: string }>;
    };
    const rest = events.find((e) => e.to === "cooling")!;
    // A flat COOLDOWN_MS, shortened by at most the 10% jitter that keeps throttled keys from returning together.
    const restMs = Date.parse(rest.until) - Date.parse(rest.at);
    expect([rest.model, restMs >= 18_000 && restMs <= 20_000]).toEqual(["gpt-4", true]);
  });
});
