import { describe, expect, it } from "bun:test";
import { jsonPost, startTestDaemon } from "./helpers/daemon";

const ADMIN_KEY = "ui-admin-key-12345678";
const CONFIG = `tokens_file: tokens.txt\nstate_file: state.db\ncooldown_sec: 0\nserver:\n  addr: 127.0.0.1:0\n  api_key: ${ADMIN_KEY}\n`;
const TOKENS = "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\nb,sk-test-bbbbbbbbbbbbbbbbbbbbbbbb\n";

describe("GET /ui", () => {
  it("serves one self-contained page, without the API key, that loads nothing from elsewhere", async () => {
    await using kp = await startTestDaemon(CONFIG, TOKENS);
    const response = await kp.fetch("/ui");
    expect([response.status, response.headers.get("content-type")]).toEqual([200, "text/html; charset=utf-8"]);
    // The browser itself is told to load nothing but the page and to talk only to this daemon.
    expect(response.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(response.headers.get("content-security-policy")).toContain("connect-src 'self'");
    const html = await response.text();
    // The SVG namespace is an identifier, never fetched.
    expect(html.replaceAll("http://www.w3.org/2000/svg", "")).not.toMatch(/https?:\/\/|\/\/[a-z0-9.-]+\.[a-z]{2,}\//i);
    expect(html).not.toMatch(/<(script|img|iframe)[^>]+src=|<link[^>]+href=|@import|url\(/i);
    expect(html).toContain("sessionStorage");
  });
});

describe("GET /ui/data", () => {
  it("needs the API key and gives each pool the last hour of requests and errors per minute", async () => {
    await using kp = await startTestDaemon(CONFIG, TOKENS);
    expect((await kp.fetch("/ui/data")).status).toBe(401);
    for (const report of [
      { id: "a", ok: true },
      { id: "b", ok: false, status: 401 },
      { id: "a", ok: false, status: 404 },
    ]) {
      expect((await kp.fetch("/release", { ...jsonPost(report), apiKey: ADMIN_KEY })).status).toBe(200);
    }
    const body = await (await kp.fetch("/ui/data", { apiKey: ADMIN_KEY })).json();
    expect(Math.abs(Date.parse(body.now) - Date.now())).toBeLessThan(60_000);
    const minutes = body.pools.default.minutes as Array<{ minute: number; requests: number; errors: number }>;
    expect(minutes).toHaveLength(60);
    // A client's own mistake (404) is a request but not the key's error. (Summed: a minute may turn meanwhile.)
    const hour = minutes.reduce((sum, m) => ({ requests: sum.requests + m.requests, errors: sum.errors + m.errors }), {
      requests: 0,
      errors: 0,
    });
    expect(hour).toEqual({ requests: 3, errors: 1 });
    expect(minutes.at(-1)!.minute).toBe(Math.floor(Date.parse(body.now) / 60_000));
  });
});
