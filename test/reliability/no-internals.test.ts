/**
 * Issue 16, class 3: no answer carries internals. Every listener of a real daemon (the API with its
 * docs and dashboard, the gateway, the metrics listener) is sent a matrix of methods × paths ×
 * malformed inputs over raw sockets, so nothing on the client side tidies the request up. No answer
 * may hold a stack frame, a source line, a path of the machine or Bun's HTML error page; every
 * error answer keypool makes carries a request id, and the daemon's log has a line with that id.
 *
 * Bun's own HTTP parser answers a few requests before keypool sees them (a header block over its
 * limit, a method it does not know, a request line it cannot read): with a bare status and no body,
 * or by closing the connection. Those hold nothing internal either, and are allowed as such.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Socket, TCPSocketListener } from "bun";
import YAML from "yaml";
import { startGateway } from "../helpers/gateway-harness";
import { KEYPOOL_BIN, binaryBuilt } from "../helpers/keypool-binary";
import { type SpawnedDaemon, spawnDaemon } from "../helpers/spawn-daemon";
import { tempDir } from "../helpers/temp-dir";
import { canary, leaksOf } from "./_canary";

const LEAK = canary("internals");
const SOURCE_ROOT = join(import.meta.dir, "../..");
const REQUEST_ID = "x-keypool-request-id";

interface Answer {
  /** What was sent, for the failure message. */
  probe: string;
  /** 0 when the connection closed without an answer. */
  status: number;
  headers: Record<string, string>;
  body: string;
  raw: string;
}

/** What an answer must never hold; `dir` is the daemon's working directory. */
function internalsIn(answer: Answer, dir: string): string[] {
  const found: string[] = [];
  const text = answer.raw;
  const checks: Array<[string, boolean]> = [
    ["a stack frame", /\bat\s+\S*\s*\(?\S+:\d+:\d+\)?/.test(text) || /\n\s+at /.test(text)],
    ["a source line reference", /\.ts:\d+/.test(text) || text.includes(".ts:")],
    ["/work", text.includes("/work")],
    ["the source tree", text.includes(SOURCE_ROOT)],
    ["the working directory", text.includes(dir)],
    ["node_modules", text.includes("node_modules")],
    // The dashboard and the docs are HTML pages; an error answer never is.
    ["an HTML error page", answer.status >= 400 && /<!doctype|<html|<script|<pre/i.test(answer.body)],
    // GET /take and GET /keys/:pool hand tokens out by design; an error answer never does.
    ["a canary token", answer.status >= 400 && leaksOf([LEAK], [text]).length > 0],
  ];
  for (const [what, hit] of checks) if (hit) found.push(`${answer.probe} → ${answer.status}: ${what}`);
  return found;
}

/** Bun's parser refused the request before keypool saw it: a bare status line, or a closed socket. */
function isParserRefusal(answer: Answer): boolean {
  return (
    answer.status === 0 ||
    (answer.body === "" && !answer.headers["content-type"] && [400, 413, 414, 431, 505].includes(answer.status))
  );
}

/** Sends `bytes` as they are, and reads until the server closes (every probe says `Connection: close`). */
async function exchange(url: string, probe: string, bytes: string | Uint8Array): Promise<Answer> {
  const { hostname, port } = new URL(url);
  const ended = Promise.withResolvers<void>();
  const chunks: Buffer[] = [];
  const socket = await Bun.connect({
    hostname,
    port: Number(port),
    socket: {
      data: (_s, data) => void chunks.push(Buffer.from(data)),
      close: () => ended.resolve(),
      // A reset after an answer (Bun closing on a request it refused) ends the exchange too.
      error: () => ended.resolve(),
    },
  });
  socket.write(bytes);
  await ended.promise;
  return parseAnswer(probe, Buffer.concat(chunks).toString("latin1"));
}

function parseAnswer(probe: string, raw: string): Answer {
  const split = raw.indexOf("\r\n\r\n");
  if (!raw.startsWith("HTTP/") || split === -1) return { probe, status: 0, headers: {}, body: raw, raw };
  const [statusLine, ...lines] = raw.slice(0, split).split("\r\n");
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = raw.slice(split + 4);
  if (headers["transfer-encoding"]?.includes("chunked")) body = dechunk(body);
  // What follows is Bun's answer to the rest of the bytes, read as a second request; `raw` keeps it.
  else if (headers["content-length"] !== undefined) body = body.slice(0, Number(headers["content-length"]));
  return { probe, status: Number(statusLine!.split(" ")[1]), headers, body, raw };
}

function dechunk(text: string): string {
  let out = "";
  let at = 0;
  for (;;) {
    const lineEnd = text.indexOf("\r\n", at);
    if (lineEnd === -1) return out;
    const size = Number.parseInt(text.slice(at, lineEnd), 16);
    if (!(size > 0)) return out;
    out += text.slice(lineEnd + 2, lineEnd + 2 + size);
    at = lineEnd + 2 + size + 2;
  }
}

const METHODS = [
  "GET",
  "POST",
  "PUT",
  "PATCH",
  "DELETE",
  "HEAD",
  "OPTIONS",
  "PROPFIND",
  "TRACE",
  "CONNECT",
  "BREW",
  "get",
];

/** Bodies sent with every method: none, JSON that does not parse, and a JSON body (on GET too). */
const BODIES: Array<{ name: string; headers: string[]; body: string }> = [
  { name: "no body", headers: [], body: "" },
  { name: "bad JSON", headers: ["Content-Type: application/json"], body: '{"lease": "ls_x", "ok": tr' },
  {
    name: "JSON body",
    headers: ["Content-Type: application/json"],
    body: `{"lease":"ls_x","ok":false,"model":"m","token":"${LEAK.token}"}`,
  },
];

function request(method: string, target: string, headers: string[] = [], body = ""): string {
  const head = [`${method} ${target} HTTP/1.1`, "Host: 127.0.0.1", "Connection: close", ...headers];
  if (body !== "" || !["GET", "HEAD"].includes(method)) head.push(`Content-Length: ${Buffer.byteLength(body)}`);
  return `${head.join("\r\n")}\r\n\r\n${body}`;
}

/** Requests no client library would send: malformed URLs, headers and framing. */
function malformed(path: string): Array<[string, string]> {
  return [
    ["bad percent-encoding", request("GET", `${path}%zz%E0%A4%A`)],
    ["a NUL escape", request("GET", `${path}%00?x=%00`)],
    ["a query of bad escapes", request("GET", `${path}?pool=%ff%fe&since=%zz&limit=%`)],
    ["an absolute-form target", request("GET", `http://evil.example${path}`)],
    ["an asterisk target", request("OPTIONS", "*")],
    ["a 100 KB URL", request("GET", `${path}?q=${"a".repeat(100_000)}`)],
    ["a 100 KB header", request("GET", path, [`X-Big: ${"b".repeat(100_000)}`])],
    [
      "4,000 headers",
      request(
        "GET",
        path,
        Array.from({ length: 4000 }, (_, i) => `X-H${i}: v`),
      ),
    ],
    ["a header without a colon", request("GET", path, ["Broken header line"])],
    ["a control character in a header", request("GET", path, ["X-Bad: a\u0001b"])],
    ["HTTP/1.0 without Host", `GET ${path} HTTP/1.0\r\nConnection: close\r\n\r\n`],
    ["a bogus protocol version", `GET ${path} HTTP/9.9\r\nHost: x\r\nConnection: close\r\n\r\n`],
    ["a garbage request line", "\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\r\n\r\n"],
    [
      "bad chunked framing",
      `${request("POST", path, ["Content-Type: application/json", "Transfer-Encoding: chunked"]).replace(
        /Content-Length: \d+\r\n/,
        "",
      )}zz\r\n{}\r\n0\r\n\r\n`,
    ],
    [
      "a body nested 100,000 deep",
      request("POST", path, ["Content-Type: application/json"], "[".repeat(100_000) + "]".repeat(100_000)),
    ],
    ["a form body", request("POST", path, ["Content-Type: application/x-www-form-urlencoded"], "ok=%zz&lease=%")],
    [
      "a multipart body without parts",
      request("POST", path, ["Content-Type: multipart/form-data; boundary=zz"], "not multipart"),
    ],
    ["a binary body", request("POST", path, ["Content-Type: application/json"], "\u0000\u00ff\u00fe{")],
    [
      "a wrong Content-Length",
      request("POST", path, ["Content-Type: application/json"], "{}").replace("Content-Length: 2", "Content-Length: 1"),
    ],
  ];
}

/** Every method × path × body, then the malformed requests on each path. */
async function sweep(url: string, paths: string[]): Promise<Answer[]> {
  const answers: Answer[] = [];
  for (const path of paths) {
    for (const method of METHODS) {
      for (const { name, headers, body } of BODIES) {
        answers.push(await exchange(url, `${method} ${path} (${name})`, request(method, path, headers, body)));
      }
    }
    for (const [name, bytes] of malformed(path)) answers.push(await exchange(url, `${path} with ${name}`, bytes));
  }
  return answers;
}

/**
 * An upstream that answers whatever it is asked with 200, except under /bad-status, where it answers
 * with a status no HTTP response may carry. Plain TCP: Bun.serve could not send such a status.
 */
function startRawUpstream(): TCPSocketListener<{ received: string }> {
  return Bun.listen<{ received: string }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open: (socket) => void (socket.data = { received: "" }),
      data(socket: Socket<{ received: string }>, data) {
        socket.data.received += data.toString("latin1");
        const text = socket.data.received;
        const split = text.indexOf("\r\n\r\n");
        if (split === -1) return;
        const length = Number(/content-length:\s*(\d+)/i.exec(text.slice(0, split))?.[1] ?? 0);
        if (text.length - split - 4 < length) return;
        const body = '{"ok":true}';
        const status = text.includes(" /bad-status") ? "999 Nonsense" : "200 OK";
        socket.end(
          `HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
        );
      },
    },
  });
}

interface Listeners {
  api: string;
  gateway: string;
  metrics: string;
}

async function listenersOf(daemon: SpawnedDaemon): Promise<Listeners> {
  const url = (line: string) => (JSON.parse(line) as { url: string }).url;
  const gateway = url(await daemon.waitForLog(/"msg":"keypool gateway listening"/));
  const metrics = url(await daemon.waitForLog(/"msg":"keypool metrics listening"/)).replace(/\/metrics$/, "");
  return { api: daemon.url, gateway, metrics };
}

/** Runs the whole matrix against one daemon and checks every answer. */
async function expectNoInternals(daemon: SpawnedDaemon, dir: string): Promise<void> {
  const { api, gateway, metrics } = await listenersOf(daemon);
  const answers = [
    ...(await sweep(api, [
      "/",
      "/health",
      "/take",
      "/release",
      "/status",
      "/events",
      "/pools/default/keys",
      "/keys/default",
      "/reload",
      "/metrics",
      "/ui",
      "/swagger",
      "/openapi.json",
      "/nope",
    ])),
    ...(await sweep(gateway, ["/", "/v1/chat/completions", "/v1/models", "/nope"])),
    ...(await sweep(metrics, ["/", "/metrics", "/nope"])),
    // A token pasted into a path: refused, and logged without it.
    await exchange(api, "GET /pools/default/keys/<token>", request("GET", `/pools/default/keys/${LEAK.token}/x`)),
    await exchange(gateway, "GET /<token> with TRACE", request("TRACE", `/v1/${LEAK.token}`)),
    // Last, as it rests the keys: an upstream status no Response can carry used to throw in the gateway.
    await exchange(gateway, "GET /bad-status (upstream answers 999)", request("GET", "/bad-status")),
  ];
  expect(answers.flatMap((answer) => internalsIn(answer, dir))).toEqual([]);

  // A 500 is a request keypool failed to handle: a bug even when its answer gives nothing away.
  expect(answers.filter((a) => a.status === 500).map((a) => a.probe)).toEqual([]);
  const errors = answers.filter((a) => a.status >= 400 && !isParserRefusal(a));
  // The matrix reaches every kind of refusal: unknown routes, bad bodies, methods, and the broken upstream.
  expect([...new Set(errors.map((a) => a.status))].sort()).toEqual(expect.arrayContaining([400, 404, 405, 502]));
  const withoutId = errors
    .filter((a) => !/^[0-9a-f]{8}$/.test(a.headers[REQUEST_ID] ?? ""))
    .map((a) => `${a.probe} → ${a.status}`);
  expect(withoutId).toEqual([]);
  const notJson = errors
    .filter((a) => a.body !== "" && !isJsonError(a.body))
    .map((a) => `${a.probe} → ${a.status}: ${a.body.slice(0, 80)}`);
  expect(notJson).toEqual([]);
  // Each id names a line of the log: the one that tells the operator what happened.
  for (const answer of errors) await daemon.waitForLog(new RegExp(`"request_id":"${answer.headers[REQUEST_ID]}"`));
  expect(daemon.log()).not.toContain(LEAK.token);
}

/** `{"error":{…,"code","message"}}`: the API's shape, and the gateway's OpenAI shape. */
function isJsonError(body: string): boolean {
  try {
    const error = (JSON.parse(body) as { error?: { code?: unknown; message?: unknown } }).error;
    return typeof error?.code === "string" && typeof error.message === "string";
  } catch {
    return false;
  }
}

function writeConfig(dir: ReturnType<typeof tempDir>, upstream: string): void {
  const config = {
    state_file: "state.db",
    server: { addr: "127.0.0.1:0" },
    metrics: { addr: "127.0.0.1:0" },
    pools: {
      default: {
        tokens_file: "tokens.txt",
        cooldown_sec: 0,
        upstream: { enabled: true, listen: "127.0.0.1:0", base_url: upstream, max_retries: 1 },
      },
    },
  };
  writeFileSync(dir.file("keypool.yaml"), YAML.stringify(config));
  writeFileSync(
    dir.file("tokens.txt"),
    `a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\nb,sk-test-bbbbbbbbbbbbbbbbbbbbbbbb\n${LEAK.id},${LEAK.token}\n`,
  );
}

describe("no answer carries internals", () => {
  let upstream: TCPSocketListener<{ received: string }>;
  beforeAll(() => {
    upstream = startRawUpstream();
  });
  afterAll(() => upstream.stop(true));

  it("on every listener of the spawned daemon, for every method, path and malformed request", async () => {
    using dir = tempDir("keypool-internals-");
    writeConfig(dir, `http://127.0.0.1:${upstream.port}`);
    // NODE_ENV unset, as a user runs it: Bun.serve's development mode would be on.
    await using daemon = await spawnDaemon(["serve", "-c", "keypool.yaml"], { NODE_ENV: "" }, { cwd: dir.path });
    await expectNoInternals(daemon, dir.path);
  }, 120_000);

  it.skipIf(!binaryBuilt)(
    `on every listener of the compiled binary (${KEYPOOL_BIN})`,
    async () => {
      using dir = tempDir("keypool-internals-bin-");
      writeConfig(dir, `http://127.0.0.1:${upstream.port}`);
      await using daemon = await spawnDaemon(
        ["serve", "-c", "keypool.yaml"],
        {},
        { cwd: dir.path, command: [KEYPOOL_BIN], cleanEnv: true },
      );
      await expectNoInternals(daemon, dir.path);
    },
    120_000,
  );
});

describe("an error thrown inside keypool", () => {
  const failure = () => {
    const error = new Error(`disk I/O error in ${SOURCE_ROOT}/src/store/sqlite/sqlite-store.ts:123:45`);
    error.stack = `Error: disk I/O error\n    at take (${SOURCE_ROOT}/src/store/sqlite/sqlite-store.ts:123:45)`;
    return error;
  };

  it("reaches a gateway client as a JSON 500 naming a request id, and the log as the error with its stack", async () => {
    await using gw = await startGateway({ handler: () => Response.json({ ok: true }) });
    gw.kp.daemon.store.take = () => Promise.reject(failure());
    const response = await fetch(`${gw.url}/v1/chat/completions`, { method: "POST", body: "{}" });
    const body = await response.text();
    const id = response.headers.get(REQUEST_ID);
    expect({ status: response.status, json: JSON.parse(body), id }).toEqual({
      status: 500,
      json: {
        error: {
          message: `keypool failed to handle this request; the keypool log has the details under ${id}`,
          type: "keypool_error",
          code: "internal_error",
        },
      },
      id: expect.stringMatching(/^[0-9a-f]{8}$/),
    });
    const line = gw.kp.logs.find((l) => l.includes(`"request_id":"${id}"`));
    expect(JSON.parse(line!)).toMatchObject({
      level: "error",
      msg: "gateway request failed",
      error: expect.stringContaining("disk I/O error"),
      stack: expect.stringContaining("sqlite-store.ts:123"),
    });
  });

  it("reaches an API client as a JSON 500 naming a request id, and the log as the error with its stack", async () => {
    await using gw = await startGateway({ handler: () => Response.json({ ok: true }) });
    gw.kp.daemon.store.status = () => Promise.reject(failure());
    const response = await gw.kp.fetch("/status");
    const id = response.headers.get(REQUEST_ID);
    expect({ status: response.status, json: await response.json() }).toEqual({
      status: 500,
      json: {
        error: { code: "INTERNAL", message: `internal error; the keypool log has the details under request ${id}` },
      },
    });
    const line = gw.kp.logs.find((l) => l.includes(`"request_id":"${id}"`));
    expect(JSON.parse(line!)).toMatchObject({
      level: "error",
      path: "/status",
      stack: expect.stringContaining("sqlite-store.ts:123"),
    });
  });
});
