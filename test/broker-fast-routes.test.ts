/**
 * GET /take and POST /release are served by a lean Bun.serve route instead of Elysia (src/http/broker-fast-routes.ts).
 * These tables pin what a client and the log saw from the Elysia path before that change — captured by running
 * the same matrix against it — so the lean route must answer every request, good and bad, exactly so:
 * status, body, the headers that matter, and the log line with the answer's request id.
 */
import { sendRaw } from "./helpers/gateway-raw-http";
import { describe, expect, it } from "bun:test";
import YAML from "yaml";
import { ManualClock } from "../src/pool/clock";
import { type TestDaemon, startTestDaemon } from "./helpers/daemon";
import { canary, leaksOf } from "./reliability/_canary";

const API_KEY = "fast-routes-api-key-0123456789abcdef";
const LEAK = canary("fast-routes");
const KEYS = ["a", "b", "c", "d", "e", "f", "g", "h"];
const TOKENS = KEYS.map((id) => `${id},sk-test-${id.repeat(24)}\n`).join("");
const NOW = Date.UTC(2026, 0, 1, 12);

type ServerKind = "open" | "keyed" | "pools";

const CONFIGS: Record<ServerKind, string> = {
  // Loopback without api_key: the Host allow-list applies.
  open: YAML.stringify({
    tokens_file: "tokens.txt",
    state_file: "state.db",
    cooldown_sec: 0,
    server: { addr: "127.0.0.1:0" },
  }),
  keyed: YAML.stringify({
    tokens_file: "tokens.txt",
    state_file: "state.db",
    cooldown_sec: 0,
    server: { addr: "127.0.0.1:0", api_key: API_KEY },
  }),
  // No pool named default: a take must name one.
  pools: YAML.stringify({
    state_file: "state.db",
    cooldown_sec: 0,
    server: { addr: "127.0.0.1:0" },
    pools: { alpha: { tokens_file: "tokens.txt" }, beta: { tokens_file: "tokens.txt" } },
  }),
};

interface Answer {
  status: number;
  body: unknown;
  headers: Record<string, string>;
  /** Whether the answer carried x-keypool-request-id (8 hex digits). */
  requestId: boolean;
  /** The log line naming the answer's request id, without its time and the id itself. */
  logged: Record<string, unknown> | null;
}

interface Case {
  name: string;
  server: ServerKind;
  method: "GET" | "POST" | "HEAD" | "PUT";
  path: string;
  headers?: Record<string, string>;
  /** `{{lease}}` stands for the lease of a take made just before. */
  body?: string;
  /** Sent as a stream: chunked, with no Content-Length. */
  chunked?: boolean;
  /** What the Elysia path answered; method and path fill in the log line of a refusal. */
  answer: (method: string, path: string) => Answer;
}

const JSON_TYPE = { "content-type": "application/json;charset=utf-8" };
const NOT_JSON =
  "request body is not valid JSON — send one JSON object (see /swagger for each route's); " +
  "any Content-Type is read as JSON";
const NO_API_KEY = "missing or wrong API key: send it as X-API-Key or Authorization: Bearer";
const NO_ROUTE = "no such route; see /swagger for the API";
const HOST_REFUSAL =
  'Host "evil.example" is not a loopback name: this listener is on loopback without server.api_key, so it answers ' +
  "only requests to localhost, 127.0.0.1 or [::1] (a web page could otherwise reach it through DNS rebinding) — " +
  "use one of those, set server.api_key, or add the name to server.allowed_hosts";
const BAD_WAIT = "wait: expected a number of seconds from 0 to 3600";
const NOT_A_MODEL =
  "model: not a model name — give the name the provider uses (letters, digits and . _ : / @ + -, " +
  "starting with a letter or digit), e.g. gpt-4o-mini";
const BUSY = "keypool is serving its most requests at once (server.max_connections = 1); retry shortly";
const unknownPool = (name: string) => refused(404, "UNKNOWN_POOL", `pool "${name}" does not exist (pools: default)`);
const NO_OK = "ok: Property 'ok' is missing";
const notAnInteger = (field: string) => `${field}: Property '${field}' should be one of: 'integer', 'integer'`;

const ok = (body: unknown) => (): Answer => ({ status: 200, body, headers: JSON_TYPE, requestId: false, logged: null });
const taken = (id: string, pool = "default") => ({
  id,
  token: `sk-test-${id.repeat(24)}`,
  pool,
  lease: "<lease>",
  expires_at: "2026-01-01T12:05:00.000Z",
});
const released = (id: string, state = "live", reason: string | null = null) => ({
  ok: true,
  pool: "default",
  id,
  state,
  reason,
});
const refused =
  (status: number, code: string, message: string, more: { logged?: string; headers?: Record<string, string> } = {}) =>
  (method: string, path: string): Answer => ({
    status,
    body: { error: { code, message } },
    headers: { ...JSON_TYPE, ...more.headers },
    requestId: true,
    logged: { level: "info", msg: "request refused", method, path, status, code: more.logged ?? code },
  });
/** A request the route's schema turned away: logged under Elysia's code for it. */
const invalid = (message: string) => refused(400, "BAD_REQUEST", message, { logged: "VALIDATION" });

const json = { "content-type": "application/json" };
const take = (name: string, query: string, answer: Case["answer"], rest: Partial<Case> = {}): Case => ({
  name,
  server: "open",
  method: "GET",
  path: `/take${query}`,
  answer,
  ...rest,
});
const release = (name: string, body: unknown, answer: Case["answer"], rest: Partial<Case> = {}): Case => ({
  name,
  server: "open",
  method: "POST",
  path: "/release",
  headers: json,
  body: typeof body === "string" ? body : JSON.stringify(body),
  answer,
  ...rest,
});

// In order: each server's keys are handed out in turn (LRU, a clock that stands still), so ids are pinned too.
const CASES: Case[] = [
  // GET /take: good
  take("take", "", ok(taken("a"))),
  take("take from the default pool by name", "?pool=default", ok(taken("b"))),
  take("take with an empty pool", "?pool=", ok(taken("c"))),
  take("take with a percent-encoded pool", "?pool=de%66ault", ok(taken("d"))),
  take("take with a session", "?session=conv-1", ok(taken("e"))),
  take("take with a session with + and %20", "?session=a+b%20c", ok(taken("f"))),
  take("take with wait", "?wait=5", ok(taken("g"))),
  take("take with wait=0", "?wait=0", ok(taken("h"))),
  take("take with a fractional wait", "?wait=0.5", ok(taken("a"))),
  take("take on a trailing slash", "/", ok(taken("b"))),
  // GET /take: bad
  take("take from an unknown pool", "?pool=nope", unknownPool("nope")),
  // The pool's name comes back in the 404: how the query is decoded shows.
  take("take from an unknown pool with +", "?pool=no+pe", unknownPool("no pe")),
  take("take from an unknown pool with a malformed escape", "?pool=no%E0%A4%A", unknownPool("no%E0%A4%A")),
  take("take from an unknown pool with an escaped name", "?p%6Fol=n%6Fpe%2B", unknownPool("nope+")),
  take("take from an unknown pool, named twice", "?pool=nope&pool=nix", unknownPool("nix")),
  take(
    "take with a 65-character pool",
    `?pool=${"p".repeat(65)}`,
    invalid("pool: Expected string length less or equal to 64"),
  ),
  take(
    "take with a 513-character session",
    `?session=${"s".repeat(513)}`,
    invalid("session: Expected string length less or equal to 512"),
  ),
  take(
    "take with a 201-character model",
    `?model=${"m".repeat(201)}`,
    invalid("model: Expected string length less or equal to 200"),
  ),
  take("take with a model no provider would name", "?model=gpt%204o", refused(400, "BAD_REQUEST", NOT_A_MODEL)),
  take("take with a canary as the model", `?model=${LEAK.token}%7C`, refused(400, "BAD_REQUEST", NOT_A_MODEL)),
  take("take with a negative wait", "?wait=-1", invalid(BAD_WAIT)),
  take("take with a wait too long", "?wait=999999", invalid(BAD_WAIT)),
  take("take with a non-numeric wait", "?wait=abc", invalid(BAD_WAIT)),
  take("take with an empty wait", "?wait=", invalid(BAD_WAIT)),
  take("take with a hex wait", "?wait=0x10", ok(taken("c"))),
  take("take with an exponent wait", "?wait=1e1", ok(taken("d"))),
  take("take with a canary as wait", `?wait=${LEAK.token}`, invalid(BAD_WAIT)),
  take("take with an unknown parameter", "?staus=1", invalid("staus: Property 'staus' should not be provided")),
  take("take with the pool twice", "?pool=default&pool=default", ok(taken("e"))),
  take("take with a malformed escape", "?session=%E0%A4%A", ok(taken("f"))),
  take("take with a bare parameter", "?pool", ok(taken("g"))),
  take("take to a foreign Host", "", refused(403, "HOST_NOT_ALLOWED", HOST_REFUSAL), {
    headers: { host: "evil.example" },
  }),
  take("HEAD /take", "", ok(""), { method: "HEAD" }),
  take("PUT /take", "", refused(404, "NOT_FOUND", NO_ROUTE), { method: "PUT" }),
  take(
    "take without a pool, several configured",
    "",
    refused(400, "BAD_REQUEST", "several pools are configured (alpha, beta); say which with ?pool=NAME"),
    { server: "pools" },
  ),
  take("take from a named pool, several configured", "?pool=beta", ok(taken("a", "beta")), { server: "pools" }),
  // GET /take: auth
  take("take without the API key", "", refused(401, "UNAUTHORIZED", NO_API_KEY), { server: "keyed" }),
  take("take with a wrong API key", "", refused(401, "UNAUTHORIZED", NO_API_KEY), {
    server: "keyed",
    headers: { "x-api-key": `${API_KEY}x` },
  }),
  take("take with X-API-Key", "", ok(taken("a")), { server: "keyed", headers: { "x-api-key": API_KEY } }),
  take("take with Bearer", "", ok(taken("b")), { server: "keyed", headers: { authorization: `Bearer ${API_KEY}` } }),
  take("take from an unknown pool without the API key", "?pool=nope", refused(401, "UNAUTHORIZED", NO_API_KEY), {
    server: "keyed",
  }),
  // POST /release: good
  release("release a lease", { lease: "{{lease}}", ok: true }, ok(released("a"))),
  release(
    "release a lease after a 429",
    { lease: "{{lease}}", ok: false, status: 429, retry_after_sec: 20 },
    ok(released("b", "cooling", "rate_limit (HTTP 429); rung 1, resting 20s")),
  ),
  release(
    "release a lease after a 401",
    { lease: "{{lease}}", ok: false, status: 401 },
    ok(released("c", "quarantined", "auth failure (HTTP 401); no health check, retried after quarantine_sec")),
  ),
  release(
    "release with a class",
    { lease: "{{lease}}", ok: false, class: "overloaded" },
    ok(released("d", "cooling", "overloaded (reported failure); rung 1, resting 30s")),
  ),
  release(
    "release with usage",
    {
      lease: "{{lease}}",
      ok: true,
      tokens: 10,
      input_tokens: 1000,
      output_tokens: 200,
      cached_tokens: 100,
      cache_write_tokens: 50,
      model: "gpt-4o-mini",
      session: "conv-1",
    },
    ok(released("e")),
  ),
  release(
    "release with numeric strings",
    { lease: "{{lease}}", ok: true, tokens: "12", status: "200" },
    ok(released("f")),
  ),
  release("release by id", { id: "a", ok: true }, ok(released("a"))),
  release(
    "release by id and pool",
    { id: "b", pool: "default", ok: true },
    ok(released("b", "cooling", "rate_limit (HTTP 429); rung 1, resting 20s")),
  ),
  release(
    "release with an error body",
    { lease: "{{lease}}", ok: false, status: 402, error_body: "insufficient_quota" },
    ok(released("g", "cooling", "quota (HTTP 402); rung 1, resting 5h")),
  ),
  release("release with a charset", { lease: "{{lease}}", ok: true }, ok(released("h")), {
    headers: { "content-type": "application/json; charset=utf-8" },
  }),
  release("release as text/plain", { lease: "{{lease}}", ok: true }, ok(released("a")), {
    headers: { "content-type": "text/plain" },
  }),
  release("release as a form (curl -d)", { lease: "{{lease}}", ok: true }, ok(released("e")), {
    headers: { "content-type": "application/x-www-form-urlencoded" },
  }),
  release("release with no content-type", { lease: "{{lease}}", ok: true }, ok(released("f")), { headers: {} }),
  release("release as APPLICATION/JSON", { lease: "{{lease}}", ok: true }, ok(released("h")), {
    headers: { "content-type": "APPLICATION/JSON" },
  }),
  release("release as multipart (not really)", { lease: "{{lease}}", ok: true }, ok(released("a")), {
    headers: { "content-type": "multipart/form-data" },
  }),
  // POST /release: bad
  release(
    "release an unknown lease",
    { lease: "ls_nope", ok: true },
    refused(404, "UNKNOWN_LEASE", 'lease "ls_nope" is unknown or has expired; take a new key'),
  ),
  release("release an unknown id", { id: "nope", ok: true }, refused(404, "UNKNOWN_KEY", 'no pool has a key "nope"')),
  release("release an id in an unknown pool", { id: "a", pool: "nope", ok: true }, unknownPool("nope")),
  release(
    "release neither lease nor id",
    { ok: true },
    refused(400, "BAD_REQUEST", 'say which key you are releasing: give "lease" (from /take) or "id"'),
  ),
  release("release without ok", { lease: "{{lease}}" }, invalid(NO_OK)),
  release("release with ok a string", { lease: "{{lease}}", ok: "yes" }, invalid("ok: Expected boolean")),
  release("release with ok a canary", { lease: "{{lease}}", ok: LEAK.token }, invalid("ok: Expected boolean")),
  release(
    "release with a canary in an unknown field",
    { lease: "{{lease}}", ok: true, token: LEAK.token },
    invalid("token: Property 'token' should not be provided"),
  ),
  release(
    "release with an unknown field",
    { lease: "{{lease}}", ok: true, staus: 429 },
    invalid("staus: Property 'staus' should not be provided"),
  ),
  release("release with status 99", { lease: "{{lease}}", ok: false, status: 99 }, invalid(notAnInteger("status"))),
  release("release with status 600", { lease: "{{lease}}", ok: false, status: 600 }, invalid(notAnInteger("status"))),
  release(
    "release with status 429.5",
    { lease: "{{lease}}", ok: false, status: 429.5 },
    invalid(notAnInteger("status")),
  ),
  release(
    "release with status a string",
    { lease: "{{lease}}", ok: false, status: "too many" },
    invalid(notAnInteger("status")),
  ),
  release(
    "release with status a huge numeric string",
    { lease: "{{lease}}", ok: false, status: "99999" },
    invalid("body: Expected integer to be less or equal to 599"),
  ),
  release(
    "release with negative tokens",
    { lease: "{{lease}}", ok: true, tokens: -1 },
    invalid(notAnInteger("tokens")),
  ),
  release(
    "release with too many tokens",
    { lease: "{{lease}}", ok: true, input_tokens: 1e15 },
    invalid(notAnInteger("input_tokens")),
  ),
  release(
    "release with a negative retry_after_sec",
    { lease: "{{lease}}", ok: false, retry_after_sec: -1 },
    invalid("retry_after_sec: Expected number to be greater or equal to 0"),
  ),
  release(
    "release with a retry_after_sec too long",
    { lease: "{{lease}}", ok: false, retry_after_sec: 1e9 },
    invalid("retry_after_sec: Expected number to be less or equal to 604800"),
  ),
  release(
    "release with an unknown class",
    { lease: "{{lease}}", ok: false, class: "bogus" },
    invalid(
      "class: Property 'class' should be one of: 'string', 'string', 'string', 'string', 'string', 'string', 'string'",
    ),
  ),
  release(
    "release with an empty lease",
    { lease: "", ok: true },
    invalid("lease: Expected string length greater or equal to 1"),
  ),
  release(
    "release with a 129-character lease",
    { lease: "l".repeat(129), ok: true },
    invalid("lease: Expected string length less or equal to 128"),
  ),
  release(
    "release with a 129-character id",
    { id: "i".repeat(129), ok: true },
    invalid("id: Expected string length less or equal to 128"),
  ),
  release(
    "release with a 65-character pool",
    { id: "a", pool: "p".repeat(65), ok: true },
    invalid("pool: Expected string length less or equal to 64"),
  ),
  release(
    "release with a 4097-character error body",
    { lease: "{{lease}}", ok: false, error_body: "e".repeat(4097) },
    invalid("error_body: Expected string length less or equal to 4096"),
  ),
  release(
    "release with a 201-character model",
    { lease: "{{lease}}", ok: true, model: "m".repeat(201) },
    invalid("model: Expected string length less or equal to 200"),
  ),
  release(
    "release with a model no provider would name",
    { id: "a", ok: true, model: "gpt 4o" },
    refused(400, "BAD_REQUEST", NOT_A_MODEL),
  ),
  release(
    "release with an empty session",
    { lease: "{{lease}}", ok: true, session: "" },
    invalid("session: Expected string length greater or equal to 1"),
  ),
  release(
    "release with a lease a number",
    { lease: 42, ok: true },
    invalid("lease: Expected property 'lease' to be string"),
  ),
  release("release with null", { lease: null, ok: true }, invalid("lease: Expected property 'lease' to be string")),
  release("release malformed JSON", "{nope", refused(400, "BAD_REQUEST", NOT_JSON, { logged: "PARSE" })),
  release(
    "release a canary as a form",
    `token=${LEAK.token}&ok=true`,
    refused(400, "BAD_REQUEST", NOT_JSON, { logged: "PARSE" }),
    {
      headers: { "content-type": "application/x-www-form-urlencoded" },
    },
  ),
  release("release an empty JSON body", "", invalid(NO_OK)),
  release("release an empty text body", "", invalid(NO_OK), { headers: { "content-type": "text/plain" } }),
  release("release a blank text body", "  \n", invalid(NO_OK), { headers: { "content-type": "text/plain" } }),
  release("release a blank JSON body", "  \n", refused(400, "BAD_REQUEST", NOT_JSON, { logged: "PARSE" })),
  release("release a chunked JSON body", { lease: "{{lease}}", ok: true }, ok(released("h")), { chunked: true }),
  release("release an array", "[]", invalid(NO_OK)),
  release("release null", "null", invalid(NO_OK)),
  release("release a number", "1", invalid(NO_OK)),
  release("release a string", '"ok"', invalid(NO_OK)),
  release(
    "release nested too deep",
    `{"ok":true,"lease":"x","x":${"[".repeat(40)}${"]".repeat(40)}}`,
    refused(400, "BAD_REQUEST", "request body nests deeper than 32 levels"),
  ),
  release(
    "release nested too deep as text",
    `${"[".repeat(40)}${"]".repeat(40)}`,
    refused(400, "BAD_REQUEST", "request body nests deeper than 32 levels"),
    {
      headers: { "content-type": "text/plain" },
    },
  ),
  release(
    "release to a foreign Host",
    { lease: "{{lease}}", ok: true },
    refused(403, "HOST_NOT_ALLOWED", HOST_REFUSAL),
    { headers: { ...json, host: "evil.example" } },
  ),
  release(
    "release a body over 1 MiB",
    `{"ok":true,"error_body":"${"x".repeat(1024 * 1024)}"}`,
    refused(413, "PAYLOAD_TOO_LARGE", "request body is larger than 1048576 bytes", {
      headers: { connection: "close" },
    }),
  ),
  release("GET /release", "", refused(404, "NOT_FOUND", NO_ROUTE), { method: "GET", headers: {}, body: undefined }),
  // POST /release: auth
  release("release without the API key", { id: "a", ok: true }, refused(401, "UNAUTHORIZED", NO_API_KEY), {
    server: "keyed",
  }),
  release("release with a wrong API key", { id: "a", ok: true }, refused(401, "UNAUTHORIZED", NO_API_KEY), {
    server: "keyed",
    headers: { ...json, "x-api-key": "nope" },
  }),
  release("release with the API key", { id: "a", ok: true }, ok(released("a")), {
    server: "keyed",
    headers: { ...json, "x-api-key": API_KEY },
  }),
  release(
    "release a body over 1 MiB without the API key",
    `{"ok":true,"error_body":"${"x".repeat(1024 * 1024)}"}`,
    refused(413, "PAYLOAD_TOO_LARGE", "request body is larger than 1048576 bytes", {
      headers: { connection: "close" },
    }),
    {
      server: "keyed",
    },
  ),
  release("release malformed JSON without the API key", "{nope", refused(401, "UNAUTHORIZED", NO_API_KEY), {
    server: "keyed",
  }),
];

/** One request written byte for byte, for what fetch() will not send; the answer's status and JSON body. */
async function rawAnswer(url: string, head: string[], body: string): Promise<{ status: number; body: unknown }> {
  const text = await sendRaw(url, `${head.join("\r\n")}\r\n\r\n${body}`);
  return { status: Number(text.split(" ")[1]), body: JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4)) };
}

function streamOf(text: string): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      if (text !== "") controller.enqueue(new TextEncoder().encode(text));
      controller.close();
    },
  });
}

/** What a client saw, with what varies between runs (lease ids, the request id) replaced or left out. */
async function answerOf(kp: TestDaemon, c: Case): Promise<Answer> {
  let body = c.body;
  if (body?.includes("{{lease}}")) {
    const lent = await kp.fetch(c.server === "pools" ? "/take?pool=alpha" : "/take", { apiKey: API_KEY });
    body = body.replace("{{lease}}", ((await lent.json()) as { lease: string }).lease);
  }
  const response = await kp.fetch(c.path, {
    method: c.method,
    headers: c.headers,
    // Bytes, so fetch adds no content-type of its own.
    body: body === undefined ? undefined : c.chunked ? streamOf(body) : new TextEncoder().encode(body),
  });
  const text = await response.text();
  const requestId = response.headers.get("x-keypool-request-id");
  const line = requestId ? kp.logs.find((l) => l.includes(`"request_id":"${requestId}"`)) : undefined;
  const { time: _time, request_id: _id, ...logged } = line ? JSON.parse(line) : { time: null, request_id: null };
  const headers: Record<string, string> = {};
  for (const name of ["content-type", "retry-after", "connection"]) {
    const value = response.headers.get(name);
    if (value !== null) headers[name] = value;
  }
  return {
    status: response.status,
    body: text === "" ? "" : JSON.parse(text.replace(/"ls_[0-9a-zA-Z_-]+"/g, '"<lease>"')),
    headers,
    requestId: requestId !== null && /^[0-9a-f]{8}$/.test(requestId),
    logged: line ? logged : null,
  };
}

describe("GET /take and POST /release, served outside Elysia", () => {
  it("answer every request of the matrix as the Elysia path did, and log each refusal alike", async () => {
    const servers: Partial<Record<ServerKind, TestDaemon>> = {};
    try {
      for (const kind of Object.keys(CONFIGS) as ServerKind[]) {
        servers[kind] = await startTestDaemon(CONFIGS[kind], TOKENS, {
          clock: new ManualClock(NOW),
          random: () => 0,
          autoCheck: false,
        });
      }
      const seen: Array<[string, Answer]> = [];
      const pinned: Array<[string, Answer]> = [];
      for (const c of CASES) {
        seen.push([c.name, await answerOf(servers[c.server]!, c)]);
        pinned.push([c.name, c.answer(c.method, c.path.split("?")[0]!)]);
      }
      expect(seen).toEqual(pinned);
      const logs = Object.values(servers).flatMap((kp) => kp.logs);
      expect(leaksOf([LEAK], [JSON.stringify(seen), ...logs])).toEqual([]);
    } finally {
      for (const kp of Object.values(servers)) await kp[Symbol.asyncDispose]();
    }
  });

  it("read an empty chunked body as no fields, as Elysia did", async () => {
    await using kp = await startTestDaemon(CONFIGS.open, TOKENS, { autoCheck: false });
    // fetch() sends an empty stream with Content-Length: 0; only a socket sends an empty chunked body.
    const send = (type: string) =>
      rawAnswer(
        kp.url,
        [
          `POST /release HTTP/1.1`,
          "host: localhost",
          "connection: close",
          "transfer-encoding: chunked",
          `content-type: ${type}`,
        ],
        "0\r\n\r\n",
      );
    expect([await send("application/json"), await send("text/plain")]).toEqual([
      { status: 400, body: { error: { code: "BAD_REQUEST", message: NO_OK } } },
      { status: 400, body: { error: { code: "BAD_REQUEST", message: NO_OK } } },
    ]);
  });

  it("refuse both routes at server.max_connections with SERVER_BUSY, as the Elysia path did", async () => {
    const config = YAML.stringify({
      tokens_file: "tokens.txt",
      state_file: "state.db",
      cooldown_sec: 0,
      max_concurrency: 1,
      server: { addr: "127.0.0.1:0", max_connections: 1 },
    });
    await using kp = await startTestDaemon(config, "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\n", { autoCheck: false });
    const held = (await (await kp.fetch("/take")).json()) as { lease: string };
    // A take waiting in line holds the one place until the line is stopped.
    const waiting = kp.fetch("/take?wait=60");
    await kp.daemon.keys.whenWaiting("default", 1);
    const busy = refused(503, "SERVER_BUSY", BUSY, { headers: { "retry-after": "1", connection: "close" } });
    // Logged as a failure of keypool's own (a 5xx that is no DomainError), with no error to name: as before.
    const logged = (method: string, path: string) => ({
      ...busy(method, path),
      logged: { level: "error", msg: "request failed", method, path, status: 503, error: "undefined" },
    });
    const answers = [
      await answerOf(kp, take("take at the cap", "", busy)),
      await answerOf(kp, release("release at the cap", { lease: held.lease, ok: true }, busy)),
    ];
    expect(answers).toEqual([logged("GET", "/take"), logged("POST", "/release")]);
    kp.daemon.keys.stop();
    expect((await waiting).status).toBe(503);
  });
});
