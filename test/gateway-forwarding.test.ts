import { describe, expect, it } from "bun:test";
import { gzipSync } from "node:zlib";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { startFakeUpstream } from "./helpers/fake-upstream";
import { TOKENS, simulated, startGateway } from "./helpers/gateway-harness";
import { rawHttp } from "./helpers/gateway-raw-http";

const TOKEN_VALUES = Object.values(TOKENS);

describe("gateway forwarding", () => {
  it("sends method, path, query and body on unchanged, with the upstream's Host and a pooled key", async () => {
    await using gw = await startGateway({ handler: () => new Response(null, { status: 204 }) });
    const response = await fetch(`${gw.url}/v1/files/f-1?purpose=x&limit=2`, { method: "DELETE", body: "payload" });
    expect(response.status).toBe(204);
    const call = gw.fake.calls[0]!;
    expect([call.method, call.path, call.body, call.headers.host]).toEqual([
      "DELETE",
      "/v1/files/f-1?purpose=x&limit=2",
      "payload",
      `127.0.0.1:${gw.fake.port}`,
    ]);
    expect(TOKEN_VALUES.map((t) => `Bearer ${t}`)).toContain(call.headers.authorization!);
  });

  it("forwards only the allowed client headers: no credentials, hop-by-hop, forwarding or unknown ones", async () => {
    await using gw = await startGateway({ handler: () => Response.json({ ok: true }) });
    const body = JSON.stringify({ model: "m" });
    const { status } = await rawHttp(
      gw.url,
      [
        "POST /v1/chat/completions HTTP/1.1",
        "host: client-side.localhost",
        "authorization: Bearer client-secret-1",
        "x-api-key: client-secret-2",
        "api-key: client-secret-3",
        "proxy-authorization: Basic client-secret-4",
        "connection: close, x-secret",
        "x-secret: 1",
        "keep-alive: timeout=5",
        "te: trailers",
        "x-forwarded-for: 10.0.0.1",
        "x-custom: dropped",
        "user-agent: OpenAI/JS 7.0",
        "x-stainless-retry-count: 0",
        "content-type: application/json",
      ],
      body,
    );
    expect(status).toBe(200);
    const sent = gw.fake.calls[0]!.headers;
    expect(TOKEN_VALUES.map((t) => `Bearer ${t}`)).toContain(sent.authorization!);
    expect(JSON.stringify(sent)).not.toContain("client-secret");
    const { authorization: _, "content-length": __, ...rest } = sent;
    expect(rest).toEqual({
      host: `127.0.0.1:${gw.fake.port}`,
      "content-type": "application/json",
      "user-agent": "OpenAI/JS 7.0",
      "x-stainless-retry-count": "0",
      // Added by Bun's fetch itself.
      accept: rest.accept!,
      "accept-encoding": rest["accept-encoding"]!,
      connection: rest.connection!,
    });
    expect(gw.fake.calls[0]!.body).toBe(body);
  });

  it("strips hop-by-hop headers, and those the upstream's Connection names, from the response", async () => {
    await using gw = await startGateway({
      handler: () =>
        new Response("hi", {
          headers: {
            connection: "x-upstream-private",
            "x-upstream-private": "1",
            "keep-alive": "timeout=5",
            "x-request-id": "r-1",
          },
        }),
    });
    const { status, head } = await rawHttp(gw.url, ["GET /v1/models HTTP/1.1", "host: localhost", "connection: close"]);
    const names = head
      .split("\r\n")
      .slice(1)
      .map((line) => line.slice(0, line.indexOf(":")).toLowerCase());
    expect(status).toBe(200);
    expect(names).toContain("x-request-id");
    expect(names.filter((n) => n === "x-upstream-private" || n === "keep-alive")).toEqual([]);
  });

  it("relays every Set-Cookie of an answer apart, and keypool's own x-keypool-* headers once", async () => {
    await using gw = await startGateway({
      handler: () => {
        const headers = new Headers({ "x-keypool-key": "from-upstream", "x-keypool-attempts": "9" });
        headers.append("set-cookie", "a=1; Path=/");
        headers.append("set-cookie", "b=2; Path=/");
        return new Response("hi", { headers });
      },
    });
    const { status, head } = await rawHttp(gw.url, ["GET /v1/models HTTP/1.1", "host: localhost", "connection: close"]);
    const lines = head.split("\r\n").slice(1);
    const valuesOf = (name: string) =>
      lines.filter((l) => l.toLowerCase().startsWith(`${name}:`)).map((l) => l.slice(name.length + 1).trim());
    expect(status).toBe(200);
    expect(valuesOf("set-cookie")).toEqual(["a=1; Path=/", "b=2; Path=/"]);
    expect(valuesOf("x-keypool-attempts")).toEqual(["1"]);
    expect(valuesOf("x-keypool-key")).toHaveLength(1);
    expect(valuesOf("x-keypool-key")[0]).not.toBe("from-upstream");
  });

  it("replaces the client's x-api-key with the pooled key for Anthropic-style upstreams", async () => {
    await using gw = await startGateway({
      handler: simulated(),
      upstream: { auth_header: "x-api-key", auth_template: "{token}" },
    });
    const client = new Anthropic({ apiKey: "client-secret", baseURL: gw.url, maxRetries: 0 });
    await client.messages.create({ model: "sim-1", max_tokens: 8, messages: [{ role: "user", content: "hi" }] });
    const sent = gw.fake.calls[0]!.headers;
    expect(TOKEN_VALUES).toContain(sent["x-api-key"]!);
    expect([sent.authorization, JSON.stringify(sent).includes("client-secret")]).toEqual([undefined, false]);
  });

  it("injects the key as ?key= with auth_query, replacing any key= the client sent", async () => {
    await using gw = await startGateway({ handler: () => Response.json({}), upstream: { auth_query: "key" } });
    const response = await fetch(`${gw.url}/v1beta/models?key=client-secret&alt=json`, {
      headers: { authorization: "Bearer client-secret-2" },
    });
    expect(response.status).toBe(200);
    const call = gw.fake.calls[0]!;
    const query = new URL(call.path, "http://x").searchParams;
    expect([query.getAll("key").length, query.get("alt")]).toEqual([1, "json"]);
    expect(TOKEN_VALUES).toContain(query.get("key")!);
    expect(call.headers.authorization).toBeUndefined();
    expect(JSON.stringify(call)).not.toContain("client-secret");
  });

  it("passes a gzip body through untouched, Content-Encoding and bytes", async () => {
    const compressed = gzipSync(JSON.stringify({ hello: "x".repeat(4096) }));
    await using gw = await startGateway({
      handler: () =>
        new Response(compressed, { headers: { "content-encoding": "gzip", "content-type": "application/json" } }),
    });
    const response = await fetch(`${gw.url}/v1/models`, { headers: { "accept-encoding": "gzip" }, decompress: false });
    expect(response.headers.get("content-encoding")).toBe("gzip");
    expect(new Uint8Array(await response.arrayBuffer())).toEqual(new Uint8Array(compressed));
    expect(gw.fake.calls[0]!.headers["accept-encoding"]).toBe("gzip");
  });

  it("passes a redirect back to the client instead of following it", async () => {
    await using gw = await startGateway({
      handler: () => new Response(null, { status: 307, headers: { location: "/v2/elsewhere" } }),
    });
    const response = await fetch(`${gw.url}/v1/models`, { redirect: "manual" });
    expect([response.status, response.headers.get("location"), gw.fake.calls.length]).toEqual([
      307,
      "/v2/elsewhere",
      1,
    ]);
  });
});

describe("gateway request body limit", () => {
  const limit = 1024;

  it("answers 413 to a declared body over max_body_bytes without calling the upstream", async () => {
    await using gw = await startGateway({ upstream: { max_body_bytes: limit } });
    const response = await fetch(`${gw.url}/v1/chat/completions`, { method: "POST", body: "x".repeat(limit + 1) });
    expect([response.status, (await response.json()).error.code]).toEqual([413, "payload_too_large"]);
    expect(gw.fake.calls.length).toBe(0);
  });

  it("answers 413 to a body far over the limit", async () => {
    await using gw = await startGateway({ upstream: { max_body_bytes: limit } });
    const response = await fetch(`${gw.url}/v1/chat/completions`, { method: "POST", body: "x".repeat(limit * 64) });
    expect([response.status, (await response.json()).error.code]).toEqual([413, "payload_too_large"]);
    expect(gw.fake.calls.length).toBe(0);
  });

  it("answers 413 to a chunked body that runs over the limit", async () => {
    await using gw = await startGateway({ upstream: { max_body_bytes: limit } });
    const chunk = new TextEncoder().encode("y".repeat(600));
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(chunk);
        controller.enqueue(chunk);
        controller.close();
      },
    });
    const response = await fetch(`${gw.url}/v1/chat/completions`, { method: "POST", body });
    expect([response.status, (await response.json()).error.code]).toEqual([413, "payload_too_large"]);
    expect(gw.fake.calls.length).toBe(0);
  });

  it("forwards a body exactly at the limit", async () => {
    await using gw = await startGateway({ upstream: { max_body_bytes: limit } });
    expect((await fetch(`${gw.url}/v1/chat/completions`, { method: "POST", body: "z".repeat(limit) })).status).toBe(
      200,
    );
    expect(gw.fake.calls[0]!.body.length).toBe(limit);
  });
});

describe("gateway client keys", () => {
  const upstream = { client_keys: ["ck-right-1", "ck-right-2"] };

  it.each([
    ["no key", {}],
    ["a wrong Bearer key", { authorization: "Bearer ck-wrong" }],
    ["a wrong x-api-key", { "x-api-key": "ck-wrong" }],
  ])("answers 401 in the OpenAI error shape to %s", async (_, headers) => {
    await using gw = await startGateway({ handler: simulated(), upstream });
    const response = await fetch(`${gw.url}/v1/models`, { headers });
    expect([response.status, await response.json()]).toEqual([
      401,
      { error: { message: expect.stringContaining("client_keys"), type: "keypool_error", code: "invalid_client_key" } },
    ]);
    expect(gw.fake.calls.length).toBe(0);
  });

  it("serves an SDK that presents a client key, and never forwards that key", async () => {
    await using gw = await startGateway({ handler: simulated(), upstream });
    const models = await new OpenAI({ apiKey: "ck-right-2", baseURL: `${gw.url}/v1`, maxRetries: 0 }).models.list();
    expect(models.data.map((m) => m.id)).toEqual(["sim-1"]);
    expect((await fetch(`${gw.url}/v1/models`, { headers: { "x-api-key": "ck-right-1" } })).status).toBe(200);
    expect(JSON.stringify(gw.fake.calls)).not.toContain("ck-right");
  });

  it("makes the SDK throw an authentication error on a wrong client key", async () => {
    await using gw = await startGateway({ handler: simulated(), upstream });
    const error = await new OpenAI({ apiKey: "ck-wrong", baseURL: `${gw.url}/v1`, maxRetries: 0 }).models
      .list()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((error as InstanceType<typeof OpenAI.APIError>).code).toBe("invalid_client_key");
  });
});

describe("gateway with several pools on one listener", () => {
  it("routes by /<pool> prefix and by the body's model", async () => {
    await using claude = await startFakeUpstream(() => Response.json({ from: "claude" }));
    await using gw = await startGateway({
      handler: () => Response.json({ from: "openai" }),
      config: (fakeUrl) => ({
        state_file: "state.db",
        cooldown_sec: 0,
        server: { addr: "127.0.0.1:0" },
        pools: {
          openai: {
            tokens_file: "tokens.txt",
            upstream: { listen: "127.0.0.1:0", base_url: fakeUrl, models: ["gpt-x"] },
          },
          claude: {
            tokens_file: "tokens.txt",
            upstream: {
              listen: "127.0.0.1:0",
              base_url: claude.url,
              models: ["claude-x"],
              auth_header: "x-api-key",
              auth_template: "{token}",
            },
          },
        },
      }),
    });
    expect(Object.keys(gw.kp.daemon.gatewayUrls)).toHaveLength(1);
    const post = (path: string, model: string) =>
      fetch(`${gw.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model }),
      });

    const answers = await Promise.all([
      post("/openai/v1/chat/completions", "anything").then((r) => r.json()),
      post("/claude/v1/messages", "anything").then((r) => r.json()),
      post("/v1/chat/completions", "gpt-x").then((r) => r.json()),
      post("/v1/messages", "claude-x").then((r) => r.json()),
    ]);
    expect(answers.map((a) => a.from)).toEqual(["openai", "claude", "openai", "claude"]);
    expect(gw.fake.calls.map((c) => c.path).sort()).toEqual(["/v1/chat/completions", "/v1/chat/completions"]);
    expect(claude.calls.map((c) => c.path)).toEqual(["/v1/messages", "/v1/messages"]);
    expect(TOKEN_VALUES).toContain(claude.calls[0]!.headers["x-api-key"]!);

    const lost = await post("/v1/chat/completions", "unknown-model");
    expect([lost.status, (await lost.json()).error.code]).toEqual([404, "no_pool_for_request"]);
  });
});
