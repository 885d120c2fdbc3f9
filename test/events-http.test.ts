import { describe, expect, it } from "bun:test";
import { ManualClock } from "../src/pool/clock";
import { jsonPost, startTestDaemon } from "./helpers/daemon";

const TOKENS =
  "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa,1,group=acme\nb,sk-test-bbbbbbbbbbbbbbbbbbbbbbbb,1,group=acme\nc,sk-test-cccccccccccccccccccccccc\n";
const BASE =
  "tokens_file: tokens.txt\nstate_file: state.db\ncooldown_sec: 0\nserver:\n  addr: 127.0.0.1:0\n  api_key: events-test-key-1\n";
const KEY = { apiKey: "events-test-key-1" };

type Row = {
  id: string;
  state: string;
  class: string | null;
  rung: number;
  group: string | null;
  until: string | null;
  errors: number;
  remaining: unknown;
};

async function rows(kp: Awaited<ReturnType<typeof startTestDaemon>>): Promise<Record<string, Row>> {
  const body = await (await kp.fetch("/status", KEY)).json();
  return Object.fromEntries((body.keys as Row[]).map((k) => [k.id, k]));
}

describe("POST /release failure fields", () => {
  it("classifies by error_body and rests the whole quota group", async () => {
    await using kp = await startTestDaemon(BASE, TOKENS);
    const before = Date.now();
    const body = JSON.stringify({ error: { message: "You exceeded your current quota", code: "insufficient_quota" } });
    const response = await kp.fetch("/release", {
      ...jsonPost({ id: "a", ok: false, status: 429, error_body: body }),
      ...KEY,
    });
    expect(response.status).toBe(200);
    const { a, b, c } = await rows(kp);
    expect([a!.state, a!.class, a!.rung, a!.group, b!.state, b!.group, c!.state]).toEqual([
      "cooling",
      "quota",
      1,
      "acme",
      "cooling",
      "acme",
      "unknown",
    ]);
    // The quota ladder's first rung, 5 h, shortened by at most 10% jitter.
    const rest = Date.parse(a!.until!) - before;
    expect(rest).toBeGreaterThan(4.5 * 3600_000 - 1000);
    expect(rest).toBeLessThanOrEqual(5 * 3600_000 + 1000);
    expect(b!.until).toBe(a!.until);
  });

  it("lets retry_after_sec set the first rung and class override classification", async () => {
    await using kp = await startTestDaemon(BASE, TOKENS);
    const before = Date.now();
    await kp.fetch("/release", { ...jsonPost({ id: "c", ok: false, status: 429, retry_after_sec: 7 }), ...KEY });
    await kp.fetch("/release", {
      ...jsonPost({ id: "a", ok: false, status: 500, class: "client", tokens: 1200 }),
      ...KEY,
    });
    const { a, c } = await rows(kp);
    expect(Date.parse(c!.until!) - before).toBeGreaterThanOrEqual(7000);
    expect(Date.parse(c!.until!) - Date.now()).toBeLessThanOrEqual(7000);
    expect([a!.state, a!.class, a!.errors, a!.remaining]).toEqual(["unknown", null, 0, null]);
  });

  it.each([
    ["an error_body over 4 KB", { error_body: "x".repeat(4097) }],
    ["an unknown class", { class: "sideways" }],
    ["a negative retry_after_sec", { retry_after_sec: -1 }],
    ["fractional tokens", { tokens: 1.5 }],
  ])("rejects %s with 400", async (_, extra) => {
    await using kp = await startTestDaemon(BASE, TOKENS);
    const response = await kp.fetch("/release", { ...jsonPost({ id: "a", ok: false, ...extra }), ...KEY });
    expect([response.status, (await response.json()).error.code]).toEqual([400, "BAD_REQUEST"]);
  });
});

describe("GET /events", () => {
  it("lists transitions oldest first, filtered by pool, key and since", async () => {
    // A manual clock, so the two transitions are a second apart and `since` falls between them.
    const clock = new ManualClock();
    await using kp = await startTestDaemon(BASE, TOKENS, { clock });
    await kp.fetch("/release", { ...jsonPost({ id: "c", ok: false, status: 401 }), ...KEY });
    clock.advance(1000);
    await kp.fetch("/release", { ...jsonPost({ id: "a", ok: false, status: 503 }), ...KEY });
    const all = await (await kp.fetch("/events", KEY)).json();
    expect(
      all.events.map((e: { key: string; from: string; to: string; class: string }) => [e.key, e.from, e.to, e.class]),
    ).toEqual([
      ["c", "unknown", "quarantined", "auth"],
      ["a", "unknown", "cooling", "overloaded"],
    ]);
    expect(all.events[1]).toEqual({
      at: new Date(clock.now()).toISOString(),
      pool: "default",
      key: "a",
      from: "unknown",
      to: "cooling",
      class: "overloaded",
      reason: expect.stringMatching(/^overloaded \(HTTP 503\); rung 1, resting \d+s$/),
      until: expect.any(String),
    });
    const onlyA = await (await kp.fetch("/events?pool=default&key=a&limit=5", KEY)).json();
    expect(onlyA.events.map((e: { key: string }) => e.key)).toEqual(["a"]);
    const since = await (await kp.fetch(`/events?since=${encodeURIComponent(all.events[0].at)}`, KEY)).json();
    expect(since.events.map((e: { key: string }) => e.key)).toEqual(["a"]);
  });

  it("needs the API key, and explains a bad since or an unknown pool", async () => {
    await using kp = await startTestDaemon(BASE, TOKENS);
    expect((await kp.fetch("/events")).status).toBe(401);
    const bad = await kp.fetch("/events?since=yesterday", KEY);
    expect([bad.status, await bad.json()]).toEqual([
      400,
      {
        error: {
          code: "BAD_REQUEST",
          message:
            'since: "yesterday" is not a time — give an ISO 8601 time (2026-01-01T12:00:00Z) or epoch milliseconds',
        },
      },
    ]);
    expect((await kp.fetch("/events?pool=nope", KEY)).status).toBe(404);
    expect((await kp.fetch("/events?limit=0", KEY)).status).toBe(400);
  });
});
