import { describe, expect, it } from "bun:test";
import { jsonPost, startTestDaemon } from "./helpers/daemon";
import { startGateway } from "./helpers/gateway-harness";
import { parsePrometheusText, sampleValue } from "./helpers/prometheus-text";

const CANARY = "sk-canary-9d8c7b6a5f4e3d2c1b0a9f8e7d6c";
const GOOD = "sk-test-bbbbbbbbbbbbbbbbbbbbbbbb";

/**
 * The canary key is rate limited, with its own token quoted in the error body (some upstreams
 * echo the key); the other answers with token usage and a rate-limit header.
 */
function upstream(_req: Request, call: { headers: Record<string, string> }): Response {
  if (call.headers.authorization?.includes(CANARY)) {
    return Response.json(
      {
        error: {
          message: `Rate limit reached for key ${CANARY}; see https://example.test/limits?key=${CANARY}`,
          type: "rate_limit",
        },
      },
      { status: 429, headers: { "retry-after": "60", "x-ratelimit-remaining-tokens": "0" } },
    );
  }
  return Response.json(
    {
      id: "cmpl-1",
      choices: [{ message: { role: "assistant", content: "hi" } }],
      usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 },
    },
    { headers: { "x-ratelimit-remaining-requests": "99", "anthropic-ratelimit-output-tokens-remaining": "5000" } },
  );
}

async function scrape(url: string) {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toContain("text/plain");
  const text = await response.text();
  return { text, samples: parsePrometheusText(text) };
}

describe("GET /metrics", () => {
  it("counts takes, requests by class, retries, upstream time, tokens and rate limits after gateway and broker traffic", async () => {
    await using gw = await startGateway({
      handler: upstream,
      tokens: { canary: CANARY, b: GOOD },
      config: (fakeUrl) => ({
        tokens_file: "tokens.txt",
        state_file: "state.db",
        cooldown_sec: 0,
        rotation: "lru",
        server: { addr: "127.0.0.1:0" },
        metrics: { addr: "127.0.0.1:0" },
        upstream: { listen: "127.0.0.1:0", base_url: fakeUrl, cooldown_sec: 0, max_retries: 2 },
      }),
    });
    // Least-recently-used rotation reaches the canary within the first two requests; its 429
    // is retried on b and rests the canary for model m for 60 s, so every request ends 200 after exactly one retry.
    for (let i = 0; i < 3; i++) {
      const response = await fetch(`${gw.url}/v1/chat/completions`, jsonPost({ model: "m", messages: [] }));
      expect(response.status).toBe(200);
      await response.json();
    }
    // Broker traffic for m, on b (the canary rests for m): one success, then a failure (which may rest b's m).
    for (const report of [{ ok: true }, { ok: false, status: 500 }]) {
      const take = await (await gw.kp.fetch("/take?model=m")).json();
      expect(take).toMatchObject({ id: "b" });
      expect((await gw.kp.fetch("/release", jsonPost({ lease: take.lease, ...report }))).status).toBe(200);
    }

    const { text, samples } = await scrape(`${gw.kp.url}/metrics`);
    const pool = { pool: "default" };
    expect({
      takes: sampleValue(samples, "keypool_takes_total", { ...pool, outcome: "ok" }),
      canaryRateLimited: sampleValue(samples, "keypool_requests_total", {
        ...pool,
        key: "canary",
        class: "rate_limit",
      }),
      bOk: sampleValue(samples, "keypool_requests_total", { ...pool, key: "b", class: "ok" }),
      bOverloaded: sampleValue(samples, "keypool_requests_total", { ...pool, key: "b", class: "overloaded" }),
      retries: sampleValue(samples, "keypool_retries_total", pool),
      firstByte: sampleValue(samples, "keypool_upstream_duration_seconds_count", { ...pool, phase: "first_byte" }),
      total: sampleValue(samples, "keypool_upstream_duration_seconds_count", { ...pool, phase: "total" }),
      inputTokens: sampleValue(samples, "keypool_tokens_total", { ...pool, key: "b", direction: "input" }),
      outputTokens: sampleValue(samples, "keypool_tokens_total", { ...pool, key: "b", direction: "output" }),
      requestsLeft: sampleValue(samples, "keypool_ratelimit_remaining", { ...pool, key: "b", kind: "requests" }),
      outputTokensLeft: sampleValue(samples, "keypool_ratelimit_remaining", {
        ...pool,
        key: "b",
        kind: "output_tokens",
      }),
      canaryTokensLeft: sampleValue(samples, "keypool_ratelimit_remaining", { ...pool, key: "canary", kind: "tokens" }),
    }).toEqual({
      takes: 6,
      canaryRateLimited: 1,
      bOk: 4,
      bOverloaded: 1,
      retries: 1,
      firstByte: 4,
      total: 4,
      inputTokens: 33,
      outputTokens: 21,
      requestsLeft: 99,
      outputTokensLeft: 5000,
      canaryTokensLeft: 0,
    });
    // One series per state, zeros included, summing to the pool's size; only pairs rest, so no key is cooling.
    const keyStates = samples.filter((s) => s.name === "keypool_keys");
    expect([keyStates.length, keyStates.reduce((sum, s) => sum + s.value, 0)]).toEqual([6, 2]);
    expect(sampleValue(samples, "keypool_keys", { ...pool, state: "cooling" })).toBe(0);
    expect(sampleValue(samples, "process_cpu_seconds_total")).toBeGreaterThan(0);
    // The histogram's buckets are cumulative and end at +Inf with the count.
    expect(
      sampleValue(samples, "keypool_upstream_duration_seconds_bucket", { ...pool, phase: "total", le: "+Inf" }),
    ).toBe(4);

    // Neither the scrape nor the log line that quotes the upstream's error carries the token.
    expect(text).not.toContain(CANARY);
    expect(text).not.toContain(GOOD);
    const failed = gw.kp.logs.map((l) => JSON.parse(l)).find((l) => l.msg === "upstream attempt failed");
    expect(failed).toMatchObject({ pool: "default", key: "canary", status: 429 });
    expect(failed.body).toContain("Rate limit reached for key [redacted]");
    expect(gw.kp.logs.join("\n")).not.toContain(CANARY);

    // The dedicated listener serves the same registry, and nothing else.
    const dedicated = gw.kp.daemon.metricsUrl!;
    expect(sampleValue((await scrape(dedicated)).samples, "keypool_retries_total", pool)).toBe(1);
    expect((await fetch(dedicated.replace(/\/metrics$/, "/status"))).status).toBe(404);
  });

  it("counts a take that finds no key, and gives no series to a pool that does not exist", async () => {
    await using kp = await startTestDaemon(
      "tokens_file: tokens.txt\nstate_file: state.db\ncooldown_sec: 45\nserver:\n  addr: 127.0.0.1:0\n",
      "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\n",
    );
    expect((await kp.fetch("/take")).status).toBe(200);
    expect((await kp.fetch("/take")).status).toBe(503);
    expect((await kp.fetch("/take?pool=made-up")).status).toBe(404);
    const { samples } = await scrape(`${kp.url}/metrics`);
    expect(samples.filter((s) => s.name === "keypool_takes_total")).toEqual([
      { name: "keypool_takes_total", labels: { pool: "default", outcome: "ok" }, value: 1 },
      { name: "keypool_takes_total", labels: { pool: "default", outcome: "no_key" }, value: 1 },
    ]);
  });

  it("needs no API key, while /status still does", async () => {
    await using kp = await startTestDaemon(
      "tokens_file: tokens.txt\nstate_file: state.db\nserver:\n  addr: 127.0.0.1:0\n  api_key: admin-key-123456\n",
      "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\n",
    );
    expect([(await kp.fetch("/metrics")).status, (await kp.fetch("/status")).status]).toEqual([200, 401]);
  });
});
