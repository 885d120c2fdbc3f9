import Anthropic from "@anthropic-ai/sdk";
import { describe, expect, it } from "bun:test";
import OpenAI from "openai";
import { SIMULATED_TEXT } from "../src/demo/simulated-upstream";
import { type FakeHandler, neverAnswer } from "./helpers/fake-upstream";
import { type GatewayUnderTest, keyOfCall, simulated, startGateway } from "./helpers/gateway-harness";

const openai = (url: string) => new OpenAI({ apiKey: "unused", baseURL: `${url}/v1`, maxRetries: 0 });
const chat = (url: string) =>
  openai(url)
    .chat.completions.create({ model: "sim-1", messages: [{ role: "user", content: "hi" }] })
    .withResponse();

/**
 * When the rest the key's pair for `model` got ends (from /events): a 429 on a request naming a model rests
 * that model on the key, not the key (rate_limit's scope is the model).
 */
async function pairRestUntil(gw: GatewayUnderTest, key: string, model: string): Promise<number> {
  const { events } = (await (await gw.kp.fetch(`/events?key=${key}`)).json()) as {
    events: Array<{ model?: string; to: string; until: string | null }>;
  };
  const rest = events.find((e) => e.model === model && e.to === "cooling");
  if (!rest?.until) throw new Error(`no rest of ${model} on key ${key} in /events`);
  return Date.parse(rest.until);
}

/** Answers the first upstream call with `first`, every later one from the simulated API. */
function firstCallFails(first: () => Response): FakeHandler {
  const ok = simulated();
  let calls = 0;
  return (req, call) => (++calls === 1 ? first() : ok(req, call));
}

describe("gateway retries", () => {
  it("retries a 429 on another key, rests the model on the first for its Retry-After, and the client sees one 200", async () => {
    await using gw = await startGateway({
      handler: firstCallFails(() =>
        Response.json({ error: { message: "slow down" } }, { status: 429, headers: { "retry-after": "120" } }),
      ),
    });
    const before = Date.now();
    const { data, response } = await chat(gw.url);
    expect([response.status, data.choices[0]!.message.content, response.headers.get("x-keypool-attempts")]).toEqual([
      200,
      SIMULATED_TEXT,
      "2",
    ]);

    const [limited, served] = gw.fake.calls.map((c) => keyOfCall(c));
    expect(gw.fake.calls.length).toBe(2);
    // The buffered body is replayed as it came.
    expect(gw.fake.calls[1]!.body).toBe(gw.fake.calls[0]!.body);
    expect(JSON.parse(gw.fake.calls[1]!.body).messages).toEqual([{ role: "user", content: "hi" }]);
    expect(limited).toBeDefined();
    expect(served).not.toBe(limited);
    expect(response.headers.get("x-keypool-key")).toBe(served!);
    // The request named sim-1: the key rests for that model, and is still in rotation for others.
    expect((await gw.key(limited!)).state).not.toBe("cooling");
    // until ≈ now + Retry-After: taken between `before` and now, plus 120 s.
    const until = await pairRestUntil(gw, limited!, "sim-1");
    expect(until).toBeGreaterThanOrEqual(before + 120_000);
    expect(until).toBeLessThanOrEqual(Date.now() + 120_000);
  });

  it("honours retry-after-ms over Retry-After", async () => {
    await using gw = await startGateway({
      handler: firstCallFails(
        () => new Response("{}", { status: 429, headers: { "retry-after-ms": "90000", "retry-after": "5" } }),
      ),
    });
    const before = Date.now();
    expect((await chat(gw.url)).response.status).toBe(200);
    const until = await pairRestUntil(gw, keyOfCall(gw.fake.calls[0]!)!, "sim-1");
    expect(until - before).toBeGreaterThanOrEqual(90_000);
    expect(until - Date.now()).toBeLessThanOrEqual(90_000);
  });

  it("quarantines a key the upstream answers 401 and serves the request with another", async () => {
    await using gw = await startGateway({ handler: simulated({ a: "revoked", b: "ok", c: "ok" }) });
    // However the pool orders its keys, send until the revoked one has been tried.
    while (!gw.fake.calls.some((c) => keyOfCall(c) === "a")) {
      const { response } = await chat(gw.url);
      expect(response.status).toBe(200);
      expect(response.headers.get("x-keypool-key")).not.toBe("a");
    }
    expect(await gw.key("a")).toMatchObject({ state: "quarantined", errors: 1 });
    expect((await gw.key("a")).reason).toContain("HTTP 401");
  });

  it("passes other 4xx through untouched, with no retry and no penalty", async () => {
    await using gw = await startGateway({
      handler: () => Response.json({ error: { message: "context too long" } }, { status: 400 }),
    });
    const response = await fetch(`${gw.url}/v1/chat/completions`, { method: "POST", body: "{}" });
    expect([response.status, await response.json(), gw.fake.calls.length]).toEqual([
      400,
      { error: { message: "context too long" } },
      1,
    ]);
    expect((await gw.key(response.headers.get("x-keypool-key")!)).state).not.toBe("cooling");
  });

  it("gives up after max_retries and returns the last upstream error, which the SDK reports", async () => {
    await using gw = await startGateway({
      handler: simulated({ a: "server_error", b: "server_error", c: "server_error" }),
      upstream: { max_retries: 1 },
    });
    const error = await chat(gw.url).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(500);
    expect((error as InstanceType<typeof OpenAI.APIError>).headers?.get("x-keypool-attempts")).toBe("2");
    expect(new Set(gw.fake.calls.map((c) => keyOfCall(c))).size).toBe(2);
  });

  it("returns the last upstream error when every key has failed", async () => {
    await using gw = await startGateway({
      handler: simulated({ a: "revoked", b: "revoked", c: "revoked" }),
      upstream: { max_retries: 5, auth_header: "x-api-key", auth_template: "{token}" },
    });
    const client = new Anthropic({ apiKey: "unused", baseURL: gw.url, maxRetries: 0 });
    const error = await client.messages
      .create({ model: "sim-1", max_tokens: 8, messages: [{ role: "user", content: "hi" }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.AuthenticationError);
    expect((error as InstanceType<typeof Anthropic.APIError>).headers?.get("x-keypool-attempts")).toBe("3");
    expect(gw.fake.calls.length).toBe(3);
    expect(Object.values(await gw.keys()).map((k) => k.state)).toEqual(["quarantined", "quarantined", "quarantined"]);
  });

  it("answers 503 no_key_available with Retry-After when no key is free", async () => {
    await using gw = await startGateway({ handler: simulated({ a: "revoked", b: "revoked", c: "revoked" }) });
    await chat(gw.url).catch(() => {});
    expect(gw.fake.calls.length).toBe(3);

    const response = await fetch(`${gw.url}/v1/chat/completions`, { method: "POST", body: "{}" });
    expect(response.status).toBe(503);
    expect(Number(response.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(await response.json()).toEqual({
      error: { message: expect.any(String), type: "keypool_error", code: "no_key_available" },
    });
    expect(gw.fake.calls.length).toBe(3);

    const error = await chat(gw.url).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect([
      (error as InstanceType<typeof OpenAI.APIError>).status,
      (error as InstanceType<typeof OpenAI.APIError>).code,
    ]).toEqual([503, "no_key_available"]);
  });

  it("fails over to another key when the first sends no headers within timeout_sec", async () => {
    const ok = simulated();
    await using gw = await startGateway({ handler: ok, upstream: { timeout_sec: 1 } });
    let calls = 0;
    gw.fake.setHandler((req, call) => (++calls === 1 ? neverAnswer(req, call) : ok(req, call)));
    const { data, response } = await chat(gw.url);
    expect([data.choices[0]!.message.content, response.headers.get("x-keypool-attempts")]).toEqual([
      SIMULATED_TEXT,
      "2",
    ]);
    const slow = keyOfCall(gw.fake.calls[0]!)!;
    expect(response.headers.get("x-keypool-key")).not.toBe(slow);
    expect(await gw.key(slow)).toMatchObject({ errors: 1, in_flight: 0 });
  });

  it("fails over when a failed answer's body stalls: timeout_sec covers reading it", async () => {
    const ok = simulated();
    await using gw = await startGateway({ handler: ok, upstream: { timeout_sec: 0.3 } });
    let calls = 0;
    gw.fake.setHandler((req, call) => {
      if (++calls > 1) return ok(req, call);
      // A 503 whose body starts, then never ends.
      const body = new ReadableStream<Uint8Array>({
        start: (controller) => controller.enqueue(new TextEncoder().encode('{"error":')),
        pull: () => new Promise<void>(() => {}),
      });
      return new Response(body, { status: 503 });
    });
    const { data, response } = await chat(gw.url);
    expect([data.choices[0]!.message.content, response.headers.get("x-keypool-attempts")]).toEqual([
      SIMULATED_TEXT,
      "2",
    ]);
    expect((await gw.key(keyOfCall(gw.fake.calls[0]!)!)).errors).toBe(1);
  });

  it("answers 502, not 503, when the pool has fewer keys than attempts and none reached the upstream", async () => {
    await using gw = await startGateway({ handler: simulated(), tokens: { solo: "sk-test-solosolosolosolosolo" } });
    await gw.fake.stop();
    const response = await fetch(`${gw.url}/v1/models`);
    const body = await response.json();
    expect([response.status, body.error.code]).toEqual([502, "upstream_unreachable"]);
    expect(body.error.message).toContain("after 1 attempts: connection refused (key solo)");
  });

  it("answers 502 when the upstream cannot be reached with any key", async () => {
    await using gw = await startGateway({ handler: simulated() });
    await gw.fake.stop();
    const response = await fetch(`${gw.url}/v1/models`);
    const body = await response.json();
    expect([response.status, body.error.code, body.error.type]).toEqual([502, "upstream_unreachable", "keypool_error"]);
    expect(body.error.message).toContain("connection refused");
  });
});
