/**
 * Scenario 10: hostile input on both listeners (the API and the gateway). Whatever a client sends,
 * the answer is a 4xx — never a 500, never a crash — and nothing hostile reaches the upstream.
 *
 * Also covered: limit + 1 declared and chunked → 413 with no upstream call, and hop-by-hop stripping
 * (test/gateway-forwarding.test.ts); a body over 1 MiB on the API (test/broker-http.test.ts).
 */
import { describe, expect, it } from "bun:test";
import { keyOfCall, startGateway } from "../helpers/gateway-harness";
import { canary, leaksOf } from "./_canary";

const LEAK = canary("hostile");
const TOKENS = { a: "sk-test-aaaaaaaaaaaaaaaaaaaaaaaa", b: "sk-test-bbbbbbbbbbbbbbbbbbbbbbbb", [LEAK.id]: LEAK.token };

/** Sends `bytes` exactly as given and resolves with the status line (or "closed" / "timeout"). */
async function rawExchange(url: string, bytes: string): Promise<string> {
  const { hostname, port } = new URL(url);
  const ended = Promise.withResolvers<string>();
  let received = "";
  const socket = await Bun.connect({
    hostname,
    port: Number(port),
    socket: {
      data(_s, data) {
        received += data.toString("latin1");
        if (received.includes("\r\n\r\n")) ended.resolve(received);
      },
      close: () => ended.resolve(received),
      error: (_s, error) => ended.reject(error),
    },
  });
  socket.write(bytes);
  const timer = setTimeout(() => ended.resolve(`${received}timeout`), 5000);
  const text = await ended.promise;
  clearTimeout(timer);
  socket.terminate();
  return text === "" ? "closed" : text.slice(0, text.indexOf("\r\n") === -1 ? text.length : text.indexOf("\r\n"));
}

const request = (lines: string[], body = "") => `${lines.join("\r\n")}\r\n\r\n${body}`;

/** A daemon with its gateway in front of a fake upstream that answers 200 to everything. */
const gateway = (upstream: Record<string, unknown> = {}) =>
  startGateway({
    tokens: TOKENS,
    handler: () => Response.json({ ok: true }),
    upstream: { max_body_bytes: 1024, ...upstream },
  });

describe("scenario 10: malformed JSON and wrong types", () => {
  it("answers 4xx with a JSON error on the API, never a 500, and logs no failure", async () => {
    await using gw = await gateway();
    const post = (path: string, body: string) =>
      gw.kp.fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body });
    const deep = "[".repeat(100_000) + "]".repeat(100_000);
    const attempts: Array<[string, Promise<Response>]> = [
      ...[
        "{",
        '{"lease":',
        "null",
        "[]",
        '"lease"',
        "42",
        '{"lease":5,"ok":"yes"}',
        '{"id":["a"],"ok":true}',
        '{"id":"a","ok":true,"status":"teapot"}',
        deep,
        "\u0000\u0001",
        '{"__proto__":{"ok":true}}',
      ].map((body) => [`POST /release ${body.slice(0, 30)}`, post("/release", body)] as [string, Promise<Response>]),
      ...[
        '{"token":123}',
        '{"token":"sk-x","weight":"heavy"}',
        '{"token":"sk-x","limits":{"rpm":-1}}',
        '{"token":"sk-x","id":"a b"}',
        '{"token":"sk-x","extra":1}',
        deep,
      ].map(
        (body) =>
          [`POST /pools/default/keys ${body.slice(0, 30)}`, post("/pools/default/keys", body)] as [
            string,
            Promise<Response>,
          ],
      ),
      ["GET /take?pool=…", gw.kp.fetch(`/take?pool=${"p".repeat(5000)}`)],
      ["GET /events?limit=abc", gw.kp.fetch("/events?limit=abc")],
      ["GET /events?since=yesterday", gw.kp.fetch("/events?since=yesterday")],
      ["GET /pools/default/usage?window=forever", gw.kp.fetch("/pools/default/usage?window=forever")],
      [
        "PATCH /pools/default/keys/a enabled=maybe",
        gw.kp.fetch("/pools/default/keys/a", {
          method: "PATCH",
          headers: { "content-type": "application/json" },
          body: '{"enabled":"maybe"}',
        }),
      ],
    ];
    const answers = await Promise.all(
      attempts.map(async ([what, pending]) => {
        const response = await pending;
        const body = await response.text();
        return { what, status: response.status, json: body.startsWith('{"error":{"code":') };
      }),
    );
    expect(answers.filter((a) => a.status < 400 || a.status >= 500 || !a.json)).toEqual([]);
    expect(gw.kp.logs.filter((line) => line.includes('"level":"error"'))).toEqual([]);
  });

  it("forwards a body that is not JSON, or absurdly nested, to the upstream untouched instead of choking on it", async () => {
    await using gw = await gateway({ max_body_bytes: 1024 * 1024 });
    for (const body of ['{"model":', "[".repeat(100_000) + "]".repeat(100_000), '{"model":{"$gt":""}}']) {
      const response = await fetch(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      expect(response.status).toBe(200);
      expect(gw.fake.calls.at(-1)!.body).toBe(body);
    }
  });

  it("refuses a token no HTTP header can carry, in the admin API and in a tokens file, instead of failing every request with it", async () => {
    await using gw = await gateway();
    for (const token of ["sk-nul\u0000x", "sk-bell\u0007x", "sk-del\u007fx", "sk-ключ"]) {
      const response = await gw.kp.fetch("/pools/default/keys", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ token }),
      });
      expect([response.status, (await response.json()).error.message]).toEqual([
        400,
        expect.stringContaining("an HTTP header cannot carry"),
      ]);
    }
    const { parseTokensFile } = await import("../../src/config/tokens-file");
    expect(() => parseTokensFile("a,sk-nul\u0000x\n", "tokens.txt")).toThrow(
      "tokens.txt:1: the token has a control character",
    );
  });
});

describe("scenario 10: oversized and malformed HTTP", () => {
  it("answers 413 to limit + 1 declared bytes at once, before the body is even sent, without calling the upstream", async () => {
    await using gw = await gateway();
    const head = [
      "POST /v1/chat/completions HTTP/1.1",
      "host: localhost",
      "content-type: application/json",
      "content-length: 1025",
    ];
    // Only the head is sent: the answer must not wait for a body keypool is going to refuse anyway.
    expect(await rawExchange(gw.url, `${head.join("\r\n")}\r\n\r\n`)).toBe("HTTP/1.1 413 Payload Too Large");
    const api = [
      "POST /release HTTP/1.1",
      "host: localhost",
      "content-type: application/json",
      `content-length: ${1024 * 1024 + 1}`,
    ];
    expect(await rawExchange(gw.kp.url, `${api.join("\r\n")}\r\n\r\n`)).toBe("HTTP/1.1 413 Payload Too Large");
    expect(gw.fake.calls.length).toBe(0);
  });

  it("answers 431 to a header section over 16 KiB on both listeners (Bun's limit, which keypool leaves at its default)", async () => {
    await using gw = await gateway();
    for (const url of [gw.url, gw.kp.url]) {
      const one = request([
        "GET /v1/models HTTP/1.1",
        "host: localhost",
        "connection: close",
        `x-big: ${"a".repeat(16 * 1024)}`,
      ]);
      const many = request([
        "GET /v1/models HTTP/1.1",
        "host: localhost",
        "connection: close",
        ...Array.from({ length: 200 }, (_, i) => `x-h${i}: ${"b".repeat(100)}`),
      ]);
      expect([await rawExchange(url, one), await rawExchange(url, many)]).toEqual([
        "HTTP/1.1 431 Request Header Fields Too Large",
        "HTTP/1.1 431 Request Header Fields Too Large",
      ]);
      // Just under the limit still works.
      expect(
        await rawExchange(
          url,
          request([
            "GET /v1/models HTTP/1.1",
            "host: localhost",
            "connection: close",
            `x-big: ${"a".repeat(15 * 1024)}`,
          ]),
        ),
      ).toStartWith("HTTP/1.1 ");
    }
    expect(gw.fake.calls.length).toBe(1);
  });

  it("answers 400 to CR or LF inside a header value, a folded header, or a NUL, and forwards nothing", async () => {
    await using gw = await gateway();
    const cases = [
      ["GET /v1/models HTTP/1.1", "host: localhost", "x-a: one\ninjected: yes", "connection: close"],
      ["GET /v1/models HTTP/1.1", "host: localhost", "x-a: one\rinjected: yes", "connection: close"],
      ["GET /v1/models HTTP/1.1", "host: localhost", "x-a: one", " folded: yes", "connection: close"],
      ["GET /v1/models HTTP/1.1", "host: localhost", "x-a: one\u0000two", "connection: close"],
    ];
    for (const url of [gw.url, gw.kp.url]) {
      for (const lines of cases) expect(await rawExchange(url, request(lines))).toBe("HTTP/1.1 400 Bad Request");
    }
    expect(gw.fake.calls.length).toBe(0);
  });

  it("answers 400 to both Content-Length and Transfer-Encoding, or two different Content-Lengths (request smuggling)", async () => {
    await using gw = await gateway();
    const both = request(
      ["POST /v1/chat/completions HTTP/1.1", "host: localhost", "content-length: 5", "transfer-encoding: chunked"],
      "0\r\n\r\nGET /v1/smuggled HTTP/1.1\r\nhost: localhost\r\n\r\n",
    );
    const twice = request(
      ["POST /v1/chat/completions HTTP/1.1", "host: localhost", "content-length: 5", "content-length: 6"],
      "hello!",
    );
    for (const url of [gw.url, gw.kp.url]) {
      expect([await rawExchange(url, both), await rawExchange(url, twice)]).toEqual([
        "HTTP/1.1 400 Bad Request",
        "HTTP/1.1 400 Bad Request",
      ]);
    }
    expect(gw.fake.calls.length).toBe(0);
  });
});

describe("scenario 10: credentials", () => {
  it("lets no client remove the injected key with Connection: x-api-key, nor get its own through", async () => {
    await using gw = await startGateway({
      tokens: TOKENS,
      handler: () => Response.json({ ok: true }),
      upstream: { auth_header: "x-api-key", auth_template: "{token}" },
    });
    for (const connection of ["x-api-key", "x-api-key, authorization", "close, X-API-KEY"]) {
      const status = await rawExchange(
        gw.url,
        request(
          [
            "POST /v1/messages HTTP/1.1",
            "host: localhost",
            `connection: ${connection}`,
            "x-api-key: sk-client-own",
            "authorization: Bearer sk-client-own",
            "content-length: 2",
          ],
          "{}",
        ),
      );
      expect(status).toBe("HTTP/1.1 200 OK");
      const sent = gw.fake.calls.at(-1)!;
      // The pooled key arrives, once, and nothing of the client's.
      expect(keyOfCall(sent, TOKENS)).toBeDefined();
      expect(JSON.stringify(sent.headers)).not.toContain("sk-client-own");
    }
  });

  it("never forwards a client key, however the client presents it", async () => {
    const clientKey = "ck-secret-client-key-0123456789";
    await using gw = await gateway({ client_keys: [clientKey] });
    const ways: Record<string, string>[] = [
      { authorization: `Bearer ${clientKey}` },
      { "x-api-key": clientKey },
      {
        "x-api-key": clientKey,
        "api-key": clientKey,
        "x-goog-api-key": clientKey,
        authorization: `Bearer ${clientKey}`,
      },
    ];
    for (const headers of ways) expect((await fetch(`${gw.url}/v1/models`, { headers })).status).toBe(200);
    expect(gw.fake.calls.length).toBe(ways.length);
    expect(JSON.stringify(gw.fake.calls)).not.toContain(clientKey);
    expect(leaksOf([LEAK], gw.kp.logs)).toEqual([]);
  });

  it("masks a pooled key that the upstream quotes back in an error body, passed through or retried", async () => {
    const tokens = { solo: "sk-test-solosolosolosolosolo" };
    await using gw = await startGateway({
      tokens,
      handler: (req) => {
        const key = req.headers.get("authorization")!.slice("Bearer ".length);
        const status = new URL(req.url).pathname === "/v1/bad" ? 400 : 401;
        return Response.json(
          { error: { message: `Incorrect API key provided: ${key}.`, param: encodeURIComponent(key) } },
          { status },
        );
      },
    });
    for (const path of ["/v1/bad", "/v1/revoked"]) {
      const response = await fetch(`${gw.url}${path}`, { method: "POST", body: "{}" });
      const body = await response.json();
      expect([response.status, body.error.message]).toEqual([
        path === "/v1/bad" ? 400 : 401,
        "Incorrect API key provided: [redacted].",
      ]);
      expect(JSON.stringify(body)).not.toContain(tokens.solo);
    }
  });
});
