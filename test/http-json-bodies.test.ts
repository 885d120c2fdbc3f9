import { describe, expect, it } from "bun:test";
import { startTestDaemon } from "./helpers/daemon";

const A = "sk-test-aaaaaaaaaaaaaaaaaaaaaaaa";
const CANARY = "sk-canary-bodies-0000000000000001";
const CONFIG = "tokens_file: tokens.txt\nstate_file: state.db\ncooldown_sec: 0\nserver:\n  addr: 127.0.0.1:0\n";

// What clients send JSON as when they do not say so: curl -d, fetch with a string, a bare body.
const CONTENT_TYPES: Array<[label: string, headers: Record<string, string>]> = [
  ["curl -d (application/x-www-form-urlencoded)", { "content-type": "application/x-www-form-urlencoded" }],
  ["text/plain", { "content-type": "text/plain;charset=UTF-8" }],
  ["no content-type", {}],
];

const send = (method: string, headers: Record<string, string>, body: string): RequestInit => ({
  method,
  headers,
  // Bytes, so fetch adds no content-type of its own.
  body: new TextEncoder().encode(body),
});

describe("JSON bodies without a JSON content-type", () => {
  for (const [label, headers] of CONTENT_TYPES) {
    it(`are read as JSON on every route that takes one: ${label}`, async () => {
      await using kp = await startTestDaemon(CONFIG, `a,${A}\n`);
      const answers = [
        await kp.fetch("/release", send("POST", headers, '{"id":"a","ok":true}')),
        await kp.fetch("/pools/default/keys", send("POST", headers, `{"id":"b","token":"${CANARY}"}`)),
        await kp.fetch("/pools/default/keys/b", send("PATCH", headers, '{"weight":2}')),
        await kp.fetch("/health/default", send("POST", headers, `{"key":"${A}","status":"healthy"}`)),
        await kp.fetch("/reload", send("POST", headers, "")),
      ];
      expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
      expect(await answers[0]!.json()).toMatchObject({ ok: true, id: "a" });
      expect(await answers[2]!.json()).toMatchObject({ id: "b", weight: 2 });
    });
  }

  it("a body that is not JSON gets a 400 that says so, without echoing the body", async () => {
    await using kp = await startTestDaemon(CONFIG, `a,${A}\n`);
    for (const [path, method] of [
      ["/release", "POST"],
      ["/pools/default/keys", "POST"],
      ["/health/default", "POST"],
    ] as const) {
      const response = await kp.fetch(path, send(method, CONTENT_TYPES[0]![1], `token=${CANARY}&ok=true`));
      const text = await response.text();
      expect([path, response.status, JSON.parse(text)]).toEqual([
        path,
        400,
        {
          error: {
            code: "BAD_REQUEST",
            message:
              "request body is not valid JSON — send one JSON object (see /swagger for each route's); any Content-Type is read as JSON",
          },
        },
      ]);
      expect(text).not.toContain(CANARY);
    }
  });

  it("an empty body names the fields the route needs", async () => {
    await using kp = await startTestDaemon(CONFIG, `a,${A}\n`);
    const response = await kp.fetch("/release", send("POST", CONTENT_TYPES[0]![1], ""));
    expect([response.status, await response.json()]).toEqual([
      400,
      { error: { code: "BAD_REQUEST", message: "ok: Property 'ok' is missing" } },
    ]);
  });
});
