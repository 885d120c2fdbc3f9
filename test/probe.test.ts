import { afterAll, describe, expect, it } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CommandCheckConfig, HttpCheckConfig } from "../src/config/types";
import { checkKeys } from "../src/health/check-keys";
import { scrubToken } from "../src/health/_token-text";
import { probeKey } from "../src/health/probe";
import { maskToken } from "../src/pool/mask";
import { deadUrl, neverAnswer, startFakeUpstream } from "./helpers/fake-upstream";

const TOKEN = "sk-probe-0123456789abcdef";

function httpCheck(url: string, over: Partial<HttpCheckConfig> = {}): HttpCheckConfig {
  return {
    kind: "http",
    url,
    method: "GET",
    headers: { authorization: "Bearer {token}" },
    successStatus: [200],
    timeoutSec: 5,
    ...over,
  };
}

function commandCheck(cmd: string[], over: Partial<CommandCheckConfig> = {}): CommandCheckConfig {
  return { kind: "command", cmd, timeoutSec: 5, ...over };
}

const tmp = mkdtempSync(join(tmpdir(), "keypool-probe-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("probeKey over HTTP", () => {
  it("is live on a success status and sends the token in the header", async () => {
    await using upstream = await startFakeUpstream();
    const result = await probeKey(httpCheck(`${upstream.url}/v1/models`), TOKEN);
    expect(result).toEqual({
      ok: true,
      status: 200,
      latencyMs: expect.any(Number),
      reason: "ok",
      retryAfterSec: undefined,
    });
    expect(upstream.calls[0]!.headers.authorization).toBe(`Bearer ${TOKEN}`);
  });

  it("fails with the status as reason on 401", async () => {
    await using upstream = await startFakeUpstream(() => new Response("bad key", { status: 401 }));
    const result = await probeKey(httpCheck(upstream.url), TOKEN);
    expect(result).toMatchObject({ ok: false, status: 401, reason: "HTTP 401" });
  });

  it("reads Retry-After in seconds on 429", async () => {
    await using upstream = await startFakeUpstream(
      () => new Response("slow down", { status: 429, headers: { "retry-after": "30" } }),
    );
    expect(await probeKey(httpCheck(upstream.url), TOKEN)).toMatchObject({
      ok: false,
      status: 429,
      reason: "HTTP 429",
      retryAfterSec: 30,
    });
  });

  it("reads Retry-After given as an HTTP date", async () => {
    const at = new Date(Date.now() + 120_000).toUTCString();
    await using upstream = await startFakeUpstream(
      () => new Response("", { status: 429, headers: { "retry-after": at } }),
    );
    const { retryAfterSec } = await probeKey(httpCheck(upstream.url), TOKEN);
    // The date has one-second resolution and the request takes a moment.
    expect(retryAfterSec).toBeGreaterThanOrEqual(115);
    expect(retryAfterSec).toBeLessThanOrEqual(121);
  });

  it("gives up after timeoutSec when the upstream never answers", async () => {
    await using upstream = await startFakeUpstream(neverAnswer);
    const started = performance.now();
    const result = await probeKey(httpCheck(upstream.url, { timeoutSec: 1 }), TOKEN);
    expect(result).toMatchObject({ ok: false, reason: "timeout after 1s" });
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it("reports a closed port as connection refused", async () => {
    const result = await probeKey(httpCheck(await deadUrl()), TOKEN);
    expect(result).toMatchObject({ ok: false, reason: "connection refused" });
    expect(result.status).toBeUndefined();
  });

  it("substitutes {token} URL-encoded in the url, and as-is in headers and body", async () => {
    const token = "sk-a b/c?d&e=f#g-0123456789";
    await using upstream = await startFakeUpstream();
    const check = httpCheck(`${upstream.url}/check?key={token}`, {
      method: "POST",
      headers: { "x-api-key": "{token}" },
      body: '{"key":"{token}"}',
    });
    expect((await probeKey(check, token)).ok).toBe(true);
    const [call] = upstream.calls;
    expect(call).toMatchObject({
      method: "POST",
      path: `/check?key=${encodeURIComponent(token)}`,
      body: `{"key":"${token}"}`,
    });
    expect(call!.headers["x-api-key"]).toBe(token);
  });

  it("keeps $-patterns in a token literal", async () => {
    const token = "sk-$&$`$'$$-0123456789";
    await using upstream = await startFakeUpstream();
    await probeKey(httpCheck(upstream.url, { headers: { "x-api-key": "k={token}" } }), token);
    expect(upstream.calls[0]!.headers["x-api-key"]).toBe(`k=${token}`);
  });

  it("follows a same-origin redirect with the token", async () => {
    await using upstream = await startFakeUpstream((req) =>
      new URL(req.url).pathname === "/start"
        ? new Response(null, { status: 302, headers: { location: "/final" } })
        : new Response("ok"),
    );
    const result = await probeKey(httpCheck(`${upstream.url}/start`), TOKEN);
    expect(result).toMatchObject({ ok: true, status: 200 });
    expect(upstream.calls.map((c) => [c.path, c.headers.authorization])).toEqual([
      ["/start", `Bearer ${TOKEN}`],
      ["/final", `Bearer ${TOKEN}`],
    ]);
  });

  it("does not follow a redirect to another origin, so the token never reaches it", async () => {
    await using elsewhere = await startFakeUpstream();
    await using upstream = await startFakeUpstream(
      () => new Response(null, { status: 307, headers: { location: `${elsewhere.url}/steal?x=1` } }),
    );
    const result = await probeKey(
      httpCheck(`${upstream.url}/start`, { url: `${upstream.url}/start?key={token}` }),
      TOKEN,
    );
    expect(result).toMatchObject({
      ok: false,
      reason: `redirected to another origin (${elsewhere.url}); token not sent`,
    });
    expect(result.status).toBeUndefined();
    expect(elsewhere.calls).toEqual([]);
  });

  it("stops after five redirects", async () => {
    await using upstream = await startFakeUpstream(
      () => new Response(null, { status: 302, headers: { location: "/again" } }),
    );
    expect(await probeKey(httpCheck(upstream.url), TOKEN)).toMatchObject({
      ok: false,
      reason: "more than 5 redirects",
    });
    expect(upstream.calls).toHaveLength(6);
  });

  it("also requires success_body when set, as a substring", async () => {
    await using upstream = await startFakeUpstream(() => new Response('{"data":[{"id":"gpt"}]}'));
    expect((await probeKey(httpCheck(upstream.url, { successBody: '"data"' }), TOKEN)).ok).toBe(true);
    expect(await probeKey(httpCheck(upstream.url, { successBody: "models" }), TOKEN)).toMatchObject({
      ok: false,
      status: 200,
      reason: 'body did not contain "models"',
    });
  });

  it("also requires success_body when set, as a /regex/flags", async () => {
    await using upstream = await startFakeUpstream(() => new Response('{"STATUS": "Active"}'));
    expect((await probeKey(httpCheck(upstream.url, { successBody: '/"status":\\s*"active"/i' }), TOKEN)).ok).toBe(true);
    expect(await probeKey(httpCheck(upstream.url, { successBody: "/^active$/" }), TOKEN)).toMatchObject({
      ok: false,
      reason: "body did not match /^active$/",
    });
  });
});

describe("probeKey with a command", () => {
  it("is live when stdout contains success_output", async () => {
    const check = commandCheck(["sh", "-c", 'echo "status: OK"'], { successOutput: "OK" });
    expect(await probeKey(check, TOKEN)).toEqual({ ok: true, latencyMs: expect.any(Number), reason: "ok" });
  });

  it("fails when stdout lacks success_output, even on exit 0", async () => {
    const check = commandCheck(["sh", "-c", "echo nope"], { successOutput: "OK" });
    expect(await probeKey(check, TOKEN)).toMatchObject({ ok: false, reason: 'output did not contain "OK"' });
  });

  it("goes by the exit code when success_output is unset", async () => {
    expect((await probeKey(commandCheck(["true"]), TOKEN)).ok).toBe(true);
    expect(await probeKey(commandCheck(["sh", "-c", "exit 3"]), TOKEN)).toMatchObject({ ok: false, reason: "exit 3" });
  });

  it("masks the token in stderr it quotes", async () => {
    const check = commandCheck(["sh", "-c", 'echo "rejected key $KEYPOOL_TOKEN" >&2; exit 3']);
    const result = await probeKey(check, TOKEN);
    expect(result).toMatchObject({ ok: false, reason: `exit 3: rejected key ${maskToken(TOKEN)}` });
    expect(result.reason).not.toContain(TOKEN);
  });

  it("kills the process at the deadline", async () => {
    const pidFile = join(tmp, "sleeper.pid");
    // exec keeps the pid: the pid written is the sleep's own.
    const check = commandCheck(["sh", "-c", 'echo $$ > "$1"; exec sleep 30', "sh", pidFile], { timeoutSec: 1 });
    const started = performance.now();
    expect(await probeKey(check, TOKEN)).toMatchObject({ ok: false, reason: "timeout after 1s" });
    expect(performance.now() - started).toBeLessThan(5000);
    const pid = Number(readFileSync(pidFile, "utf8"));
    expect(() => process.kill(pid, 0)).toThrow();
  });

  it.each([
    ["at the deadline", 'sleep 30 & echo $! > "$1"; wait', { timeoutSec: 1 }, "timeout after 1s"],
    ["when it exits first", 'sleep 30 > /dev/null 2>&1 & echo $! > "$1"', {}, "ok"],
  ])(
    "kills what the command started %s, so nothing holding the token outlives the probe",
    async (_when, script, over, reason) => {
      const pidFile = join(tmp, `child-${reason.length}.pid`);
      const result = await probeKey(commandCheck(["sh", "-c", script, "sh", pidFile], over), TOKEN);
      expect(result).toMatchObject({ reason });
      const pid = Number(readFileSync(pidFile, "utf8"));
      // SIGKILL is delivered before kill() returns, but the zombie is reaped by init: wait for that, not a time.
      while (isRunning(pid)) await Bun.sleep(0);
      expect(isRunning(pid)).toBe(false);
    },
  );

  it("returns promptly on a plain sleep 30 with timeout 1", async () => {
    const started = performance.now();
    expect(await probeKey(commandCheck(["sleep", "30"], { timeoutSec: 1 }), TOKEN)).toMatchObject({
      reason: "timeout after 1s",
    });
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it("kills the process when the caller aborts", async () => {
    const controller = new AbortController();
    const probing = probeKey(commandCheck(["sleep", "30"], { timeoutSec: 60 }), TOKEN, { signal: controller.signal });
    controller.abort();
    expect(await probing).toMatchObject({ ok: false, reason: "aborted" });
  });

  it("says so when the command does not exist", async () => {
    expect(await probeKey(commandCheck(["keypool-no-such-command"]), TOKEN)).toMatchObject({
      ok: false,
      reason: "command not found: keypool-no-such-command",
    });
  });

  it("gives a shell-looking token only in KEYPOOL_TOKEN, never in argv, running nothing", async () => {
    const marker = join(tmp, "pwned");
    const token = `$(touch ${marker});id \`touch ${marker}-2\` "; touch ${marker}-3 '`;
    const echo = "console.log(JSON.stringify({ argv: process.argv.slice(1), env: process.env.KEYPOOL_TOKEN }))";
    const check = commandCheck([process.execPath, "-e", echo, "plain"], {
      successOutput: JSON.stringify({ argv: ["plain"], env: token }),
    });
    expect(await probeKey(check, token)).toMatchObject({ ok: true });
    for (const suffix of ["", "-2", "-3"]) expect(existsSync(marker + suffix)).toBe(false);
  });
});

describe("checkKeys", () => {
  const key = (id: string, token: string) => ({ id, token, weight: 1 });

  it("never has more than `concurrency` probes in flight and keeps input order", async () => {
    await using upstream = await startFakeUpstream();
    const held: Array<() => void> = [];
    upstream.setHandler(
      (_req, call) =>
        new Promise((resolve) =>
          held.push(() =>
            resolve(new Response("", { status: call.headers.authorization!.includes("bad") ? 401 : 200 })),
          ),
        ),
    );
    const check = httpCheck(upstream.url);
    const targets = Array.from({ length: 10 }, (_, i) => ({
      pool: "p",
      key: key(`k${i}`, i % 3 === 0 ? `bad-${i}` : `good-${i}`),
      check,
    }));
    const checking = checkKeys(targets, { concurrency: 3 });
    // Answer one request each time a new one is let in: a fourth arrives only after one finishes.
    for (let answered = 0; answered < targets.length; answered++) {
      await upstream.wait(Math.min(targets.length, 3 + answered));
      held.shift()!();
    }
    const rows = await checking;
    expect(upstream.maxInFlight).toBe(3);
    expect(rows.map((r) => [r.id, r.state])).toEqual(
      targets.map((_t, i) => [`k${i}`, i % 3 === 0 ? "failed" : "live"]),
    );
  });

  it("reports keys of a pool without a check as unchecked, without probing", async () => {
    const rows = await checkKeys([{ pool: "manual", key: key("m1", TOKEN) }], { concurrency: 4 });
    expect(rows).toEqual([
      { pool: "manual", id: "m1", state: "unchecked", ok: false, latencyMs: 0, reason: "no check configured" },
    ]);
  });
});

/** Alive and not a zombie (a killed child of init lingers as one until reaped). */
function isRunning(pid: number): boolean {
  try {
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

describe("scrubToken", () => {
  const token = "sk-scrub-0123456789abcdefghij";
  it.each([
    ["whole", `denied ${token}`],
    ["URL-encoded", `GET /?key=${encodeURIComponent(`${token}/+`)}`],
    ["cut short", `key ${token.slice(0, 20)}`],
    ["its tail", `…${token.slice(-12)} rejected`],
    ["a piece from the middle", `piece: ${token.slice(6, 18)}.`],
  ])("masks the token %s", (_how, text) => {
    const tokenWithExtras = text.includes("%2F") ? `${token}/+` : token;
    const out = scrubToken(text, tokenWithExtras);
    for (let i = 0; i + 8 <= tokenWithExtras.length; i++) expect(out).not.toContain(tokenWithExtras.slice(i, i + 8));
  });

  it("masks a JSON-escaped token", () => {
    const quoted = 'sk-"quoted"\\0123456789abcdef';
    expect(scrubToken(JSON.stringify({ key: quoted }), quoted)).toBe(`{"key":"${maskToken(quoted)}"}`);
  });

  it("leaves text that only shares short runs with the token alone", () => {
    expect(scrubToken("exit 3: sk-… rejected 0123", token)).toBe("exit 3: sk-… rejected 0123");
  });
});
