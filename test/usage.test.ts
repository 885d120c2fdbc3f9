import { describe, expect, it } from "bun:test";
import { SIMULATED_TEXT } from "../src/demo/simulated-upstream";
import { jsonPost } from "./helpers/daemon";
import { TOKENS, simulated, startGateway } from "./helpers/gateway-harness";

// The simulated upstream reports 12 input tokens and 7 output tokens for every answer.
const IN = 12;
const OUT = 7;
const PRICES = {
  "gpt-4o-mini": { input_per_mtok: 0.15, output_per_mtok: 0.6 },
  "claude-3-5-haiku": { input_per_mtok: 0.8, output_per_mtok: 4 },
};

/** Pools `openai` and `anthropic` (each injecting the key the way its API expects) behind one listener. */
function startPricedGateway() {
  const pool = (fakeUrl: string, upstream: Record<string, unknown> = {}) => ({
    tokens_file: "tokens.txt",
    upstream: { listen: "127.0.0.1:0", base_url: fakeUrl, cooldown_sec: 0, ...upstream },
  });
  return startGateway({
    handler: simulated({ a: "ok" }, TOKENS),
    tokens: { a: TOKENS.a },
    config: (fakeUrl) => ({
      state_file: "state.db",
      cooldown_sec: 0,
      server: { addr: "127.0.0.1:0" },
      pools: {
        openai: pool(fakeUrl),
        anthropic: pool(fakeUrl, { auth_header: "x-api-key", auth_template: "{token}" }),
      },
      prices: PRICES,
    }),
  });
}

async function chat(url: string, body: Record<string, unknown>, path = "/v1/chat/completions"): Promise<string> {
  const response = await fetch(
    `${url}${path}`,
    jsonPost({ messages: [{ role: "user", content: "hi" }], max_tokens: 10, ...body }),
  );
  expect(response.status).toBe(200);
  // Read to the end: the gateway releases the key, with the usage it saw, when the body is done.
  return response.text();
}

describe("usage accounting", () => {
  it("counts tokens and cost from plain and streamed answers, OpenAI and Anthropic alike", async () => {
    await using gw = await startPricedGateway();
    expect(await chat(gw.url, { model: "gpt-4o-mini" }, "/openai/v1/chat/completions")).toContain(SIMULATED_TEXT);
    await chat(gw.url, { model: "gpt-4o-mini", stream: true }, "/openai/v1/chat/completions");
    await chat(gw.url, { model: "unpriced-model" }, "/openai/v1/chat/completions");
    await chat(gw.url, { model: "claude-3-5-haiku-20241022" }, "/anthropic/v1/messages");
    await chat(gw.url, { model: "claude-3-5-haiku-20241022", stream: true }, "/anthropic/v1/messages");

    const totals = (requests: number, costMicros: number) => ({
      requests,
      successes: requests,
      failures: { rate_limit: 0, quota: 0, auth: 0, overloaded: 0, timeout: 0, network: 0, client: 0, other: 0 },
      success_rate: 1,
      input_tokens: requests * IN,
      output_tokens: requests * OUT,
      cached_tokens: 0,
      cache_write_tokens: 0,
      cache_hit_ratio: 0,
      cost_usd: Math.round(costMicros) / 1e6,
    });
    const openai = totals(3, 2 * (IN * 0.15 + OUT * 0.6));
    const anthropic = totals(2, 2 * (IN * 0.8 + OUT * 4));
    expect(await (await gw.kp.fetch("/pools/openai/usage?window=hour")).json()).toEqual({
      pool: "openai",
      window: "hour",
      since: expect.any(String),
      totals: openai,
      keys: [{ id: "a", present: true, usage: openai }],
    });
    expect((await (await gw.kp.fetch("/pools/anthropic/usage?window=day")).json()).totals).toEqual(anthropic);

    const status = await (await gw.kp.fetch("/status?pool=anthropic")).json();
    expect(status.keys[0].usage).toEqual({
      requests: 2,
      success_rate: 1,
      input_tokens: 2 * IN,
      output_tokens: 2 * OUT,
      cached_tokens: 0,
      cache_write_tokens: 0,
      cache_hit_ratio: 0,
      cost_usd: anthropic.cost_usd,
    });
  });

  it("counts failed attempts by class and retries on the key that answered", async () => {
    await using gw = await startGateway({
      handler: simulated({ a: "rate_limited", b: "ok" }),
      tokens: { a: TOKENS.a, b: TOKENS.b },
    });
    await chat(gw.url, { model: "gpt-4o-mini" });
    await chat(gw.url, { model: "gpt-4o-mini" });
    const body = await (await gw.kp.fetch("/pools/default/usage")).json();
    const byId = Object.fromEntries(body.keys.map((k: { id: string; usage: unknown }) => [k.id, k.usage]));
    expect([byId.a.requests, byId.a.successes, byId.a.failures.rate_limit, byId.a.success_rate]).toEqual([1, 0, 1, 0]);
    expect([byId.b.requests, byId.b.successes, byId.b.input_tokens, byId.b.cost_usd]).toEqual([2, 2, 2 * IN, 0]);
    expect([body.window, body.totals.requests, body.totals.successes]).toEqual(["day", 3, 2]);
  });

  it("takes usage reported to POST /release, and rejects an unknown window", async () => {
    await using gw = await startPricedGateway();
    const lease = await (await gw.kp.fetch("/take?pool=openai")).json();
    const released = await gw.kp.fetch(
      "/release",
      jsonPost({
        lease: lease.lease,
        ok: true,
        input_tokens: 1_000_000,
        output_tokens: 1_000_000,
        model: "gpt-4o-mini",
      }),
    );
    expect(released.status).toBe(200);
    const all = await (await gw.kp.fetch("/pools/openai/usage?window=all")).json();
    expect([all.since, all.totals.input_tokens, all.totals.cost_usd]).toEqual([null, 1_000_000, 0.75]);
    expect((await gw.kp.fetch("/pools/openai/usage?window=week")).status).toBe(400);
    expect((await gw.kp.fetch("/pools/nope/usage")).status).toBe(404);
  });
});
