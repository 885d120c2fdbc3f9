import { describe, expect, it } from "bun:test";
import { keyOfCall, startGateway } from "./helpers/gateway-harness";

const chat = (url: string, model: { model?: string } = { model: "m" }) =>
  fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...model, messages: [{ role: "user", content: "hi" }] }),
  });

/** An answer whose headers say the key's budget of requests is spent until `reset`. */
const budgetSpent = (reset: string) => () =>
  Response.json(
    { ok: true },
    {
      headers: {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": reset,
        "anthropic-ratelimit-tokens-remaining": "12000",
        "anthropic-ratelimit-tokens-reset": reset,
      },
    },
  );

const HOUR = 3600_000;

describe("gateway failure policy", () => {
  it("rests a key for hours when its 429 says the quota is spent, and retries on another", async () => {
    let calls = 0;
    await using gw = await startGateway({
      handler: () =>
        ++calls === 1
          ? Response.json(
              {
                error: {
                  message: "You exceeded your current quota",
                  type: "insufficient_quota",
                  code: "insufficient_quota",
                },
              },
              { status: 429 },
            )
          : Response.json({ ok: true }),
    });
    const response = await chat(gw.url);
    expect([response.status, response.headers.get("x-keypool-attempts")]).toEqual([200, "2"]);
    const spent = await gw.key(keyOfCall(gw.fake.calls[0]!)!);
    expect([spent.state, (spent as unknown as { class: string }).class]).toEqual(["cooling", "quota"]);
    expect(Date.parse(spent.until!) - Date.now()).toBeGreaterThan(4 * HOUR);
  });

  it("costs a key nothing for the client's own mistake", async () => {
    await using gw = await startGateway({
      handler: () =>
        Response.json(
          { error: { message: "maximum context length is 8192 tokens", code: "context_length_exceeded" } },
          { status: 400 },
        ),
    });
    expect((await chat(gw.url)).status).toBe(400);
    const key = await gw.key(keyOfCall(gw.fake.calls[0]!)!);
    expect([key.state, key.errors]).toEqual(["unknown", 0]);
  });

  it("rests a key whose rate-limit budget is spent before it ever gets a 429, and shows what is left", async () => {
    const reset = new Date(Date.now() + 30_000).toISOString();
    await using gw = await startGateway({ handler: budgetSpent(reset) });
    // A request naming no model: the headers speak for the key.
    const response = await chat(gw.url, {});
    // Read to the end: the lease (and what the headers said) is released as the body ends.
    expect([response.status, await response.json()]).toEqual([200, { ok: true }]);
    const key = await gw.key(keyOfCall(gw.fake.calls[0]!)!);
    expect(key).toMatchObject({
      state: "cooling",
      until: reset,
      remaining: { requests: 0, tokens: 12000, reset_at: reset },
    });
  });

  it("rests only the model whose budget the headers say is spent, when the request names one", async () => {
    const reset = new Date(Date.now() + 30_000).toISOString();
    await using gw = await startGateway({ handler: budgetSpent(reset) });
    const response = await chat(gw.url);
    expect([response.status, await response.json()]).toEqual([200, { ok: true }]);
    const id = keyOfCall(gw.fake.calls[0]!)!;
    // The budget headers describe the model that was called: that pair rests, the key serves other models.
    expect(await gw.key(id)).toMatchObject({ state: "live", until: null });
    const { events } = (await (await gw.kp.fetch(`/events?key=${id}`)).json()) as {
      events: Array<{ model?: string; to: string; until: string | null }>;
    };
    expect(events.filter((e) => e.model === "m").map((e) => [e.to, e.until])).toEqual([["cooling", reset]]);
  });
});
