/**
 * Issue 16, class 4: the key leaves only in the request to the configured upstream, in the configured
 * place. A fake upstream echoes the key it received back in every way it can — response headers, a
 * redirect's Location, compressed and escaped error bodies — and the canary must reach neither the
 * client nor the log. And the client's own identity (cookies, organization, address) stays with it.
 */
import { describe, expect, it } from "bun:test";
import { brotliCompressSync, deflateSync, gzipSync, zstdCompressSync } from "node:zlib";
import { writeFileSync } from "node:fs";
import { ConfigError } from "../../src/config/errors";
import { loadConfig } from "../../src/config/load";
import { startGateway } from "../helpers/gateway-harness";
import { tempDir } from "../helpers/temp-dir";
import { leaksOf } from "./_canary";

/** Canaries with the characters encoders escape: `/` (JSON's `\/`), `+` and `=` (URL-encoding). */
const CANARIES = ["a", "b", "c", "d", "e"].map((n) => ({
  id: `canary-exfil-${n}`,
  token: `sk-canary/${n}${crypto.randomUUID().replaceAll("-", "")}+x=`,
}));
const CANARY = CANARIES[0]!;
/** Every key of the pool is a canary: a 401 or 403 echo quarantines the key it came back for. */
const ALL_CANARIES = Object.fromEntries(CANARIES.map((c) => [c.id, c.token]));

/** Every spelling the fake uses, each searched for in what the client and the log got. */
function spellings(token: string): string[] {
  const unicode = (upper: boolean) =>
    [...token]
      .map((c) =>
        /[A-Za-z0-9]/.test(c) ? c : `\\u00${c.charCodeAt(0).toString(16)[upper ? "toUpperCase" : "toLowerCase"]()}`,
      )
      .join("");
  return [
    token,
    encodeURIComponent(token),
    encodeURIComponent(token).toLowerCase(),
    token.replaceAll("/", "\\/"),
    unicode(false),
    unicode(true),
  ];
}

const json = (token: string) =>
  `{"error":{"message":"Incorrect API key provided: ${token.replaceAll("/", "\\/")}","key":"${spellings(token)[4]}"}}`;

/** The echo, by path: each answers with the key the request carried, in one more way. */
function echo(req: Request): Response {
  const url = new URL(req.url);
  const token = url.searchParams.get("key") ?? "";
  const plain = { "content-type": "application/json" };
  switch (url.pathname) {
    case "/headers":
      return new Response("{}", {
        status: 200,
        headers: {
          ...plain,
          "x-echo-key": token,
          "x-debug": `key=${encodeURIComponent(token)}`,
          "set-cookie": `k=${token}; Path=/`,
          link: `</next?key=${token}>; rel="next"`,
        },
      });
    case "/redirect":
      return new Response(null, {
        status: 302,
        headers: { location: `https://upstream.example/v1/next?alt=json&key=${encodeURIComponent(token)}` },
      });
    case "/gzip":
      return new Response(gzipSync(json(token)), { status: 401, headers: { ...plain, "content-encoding": "gzip" } });
    case "/br":
      return new Response(brotliCompressSync(json(token)), {
        status: 403,
        headers: { ...plain, "content-encoding": "br" },
      });
    case "/deflate":
      return new Response(deflateSync(json(token)), {
        status: 400,
        headers: { ...plain, "content-encoding": "deflate" },
      });
    case "/zstd":
      return new Response(zstdCompressSync(json(token)), {
        status: 400,
        headers: { ...plain, "content-encoding": "zstd" },
      });
    case "/escaped":
      return new Response(json(token), { status: 400, headers: plain });
    case "/urlencoded":
      return new Response(`error=invalid_key&key=${encodeURIComponent(token)}`, {
        status: 400,
        headers: { "content-type": "application/x-www-form-urlencoded" },
      });
    case "/retried-gzip":
      // Retryable: buffered, logged ("upstream attempt failed"), then returned as the last answer.
      return new Response(gzipSync(json(token)), { status: 500, headers: { ...plain, "content-encoding": "gzip" } });
    default:
      return new Response("unknown echo", { status: 404 });
  }
}

describe("a key the upstream echoes back", () => {
  it("reaches neither the client nor the log, in headers, Location or compressed and escaped error bodies", async () => {
    await using gw = await startGateway({
      tokens: ALL_CANARIES,
      handler: echo,
      upstream: { auth_query: "key", max_retries: 0 },
    });
    const paths = [
      "/headers",
      "/redirect",
      "/gzip",
      "/br",
      "/deflate",
      "/zstd",
      "/escaped",
      "/urlencoded",
      "/retried-gzip",
    ];
    const seen: string[] = [];
    const statuses: Record<string, number> = {};
    const encodings: Record<string, string | null> = {};
    for (const path of paths) {
      const response = await fetch(`${gw.url}${path}`, {
        redirect: "manual",
        decompress: false,
        headers: { "accept-encoding": "gzip, br, zstd, deflate" },
      });
      statuses[path] = response.status;
      encodings[path] = response.headers.get("content-encoding");
      const body = await response.text();
      seen.push(
        response.statusText,
        [...response.headers].map(([name, value]) => `${name}: ${value}`).join("\n"),
        body,
      );
      if (!["/headers", "/redirect"].includes(path)) expect(body).toContain("[redacted]");
    }
    // A canary really went out, in the configured place, on every request.
    const tokens = CANARIES.map((c) => c.token);
    expect(
      gw.fake.calls.filter((call) => tokens.includes(new URL(call.path, "http://x").searchParams.get("key")!)),
    ).toHaveLength(paths.length);
    expect(statuses).toEqual({
      "/headers": 200,
      "/redirect": 302,
      "/gzip": 401,
      "/br": 403,
      "/deflate": 400,
      "/zstd": 400,
      "/escaped": 400,
      "/urlencoded": 400,
      "/retried-gzip": 500,
    });
    // Decompressed to be searched, and sent as searched.
    expect(Object.values(encodings).filter((e) => e !== null)).toEqual([]);
    const everything = [...seen, ...gw.kp.logs].join("\n");
    expect(CANARIES.flatMap((c) => spellings(c.token)).filter((form) => everything.includes(form))).toEqual([]);
    expect(leaksOf(CANARIES, [everything])).toEqual([]);
    expect(seen.join("\n")).toContain("location: https://upstream.example/v1/next?alt=json&key=[redacted]");
  });

  it("answers a body in an encoding it cannot read with a note instead of the body", async () => {
    await using gw = await startGateway({
      tokens: { [CANARY.id]: CANARY.token },
      handler: (req) =>
        new Response(`compressed ${new URL(req.url).searchParams.get("key")}`, {
          status: 400,
          headers: { "content-encoding": "x-unknown" },
        }),
      upstream: { auth_query: "key" },
    });
    const response = await fetch(`${gw.url}/v1/x`, { decompress: false });
    const body = await response.text();
    expect([response.status, response.headers.get("content-encoding"), body]).toEqual([
      400,
      null,
      "[keypool: the upstream's error body was in an encoding keypool cannot read (x-unknown), so it was left out]",
    ]);
  });
});

describe("client headers", () => {
  it("reach the upstream only when it needs them: no cookie, organization, project or forwarding headers", async () => {
    await using gw = await startGateway({ tokens: { [CANARY.id]: CANARY.token }, handler: () => Response.json({}) });
    const identity = {
      cookie: "session=client-cookie",
      "openai-organization": "org-client",
      "openai-project": "proj-client",
      forwarded: "for=10.0.0.9;proto=https",
      "x-forwarded-for": "10.0.0.9",
      "x-forwarded-host": "client.example",
      "x-forwarded-proto": "https",
      "x-real-ip": "10.0.0.9",
      "true-client-ip": "10.0.0.9",
      "cf-connecting-ip": "10.0.0.9",
      via: "1.1 client-proxy",
      origin: "https://client.example",
      referer: "https://client.example/page",
      "x-goog-user-project": "client-billing",
    };
    const needed = {
      "content-type": "application/json",
      accept: "application/json",
      "user-agent": "Anthropic/JS 1.0",
      "anthropic-version": "2023-06-01",
      "anthropic-beta": "tools-2024",
      "openai-beta": "assistants=v2",
      "idempotency-key": "idem-1",
      "x-stainless-retry-count": "1",
      "x-stainless-lang": "js",
    };
    const response = await fetch(`${gw.url}/v1/messages`, {
      method: "POST",
      headers: { ...identity, ...needed },
      body: "{}",
    });
    expect(response.status).toBe(200);
    const sent = gw.fake.calls[0]!.headers;
    expect(sent.authorization).toBe(`Bearer ${CANARY.token}`);
    expect(Object.keys(identity).filter((name) => name in sent)).toEqual([]);
    expect(Object.fromEntries(Object.keys(needed).map((name) => [name, sent[name]]))).toEqual(needed);
  });

  it("reach the upstream when the pool lists them in upstream.forward_headers", async () => {
    await using gw = await startGateway({
      handler: () => Response.json({}),
      upstream: { forward_headers: ["X-Custom-Trace"] },
    });
    await fetch(`${gw.url}/v1/x`, { headers: { "x-custom-trace": "t-1", "x-other": "dropped" } });
    const sent = gw.fake.calls[0]!.headers;
    expect([sent["x-custom-trace"], sent["x-other"]]).toEqual(["t-1", undefined]);
  });
});

describe("upstream.forward_headers", () => {
  it("cannot name a client credential or a connection header", () => {
    using dir = tempDir();
    writeFileSync(dir.file("tokens.txt"), `${CANARY.id},${CANARY.token}\n`);
    const upstream = {
      base_url: "http://127.0.0.1:1",
      forward_headers: ["X-Trace", "Authorization", "x-api-key", "Connection"],
    };
    writeFileSync(dir.file("keypool.yaml"), JSON.stringify({ tokens_file: "tokens.txt", upstream }));
    let issues: string[] = [];
    try {
      loadConfig(dir.file("keypool.yaml"));
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      issues = error.issues;
    }
    expect(issues).toEqual([
      "upstream.forward_headers: authorization, x-api-key, connection cannot be forwarded (a client credential, a connection header or not a header name) — remove it",
    ]);
  });
});
