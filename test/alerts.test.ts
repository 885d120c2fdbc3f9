import { describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { ConfigError } from "../src/config/errors";
import { parseConfig } from "../src/config/load";
import type { Alert } from "../src/alerts/alert";
import { TakeQueue } from "../src/broker/take-queue";
import { DomainError } from "../src/pool/errors";
import type { Lease } from "../src/store/types";
import { type Sleep, WebhookSender } from "../src/alerts/webhook-sender";
import { createLogger } from "../src/log";
import { ManualClock } from "../src/pool/clock";
import { type FakeUpstream, deadUrl, startFakeUpstream } from "./helpers/fake-upstream";
import { jsonPost, startTestDaemon } from "./helpers/daemon";
import { runKeypool } from "./helpers/run-keypool";
import { tempDir } from "./helpers/temp-dir";

const START = Date.UTC(2026, 0, 1);
const MINUTE = 60_000;

/** The JSON bodies a receiver got, by event. */
function alertsBy(receiver: FakeUpstream): Record<string, Array<Record<string, unknown>>> {
  const out: Record<string, Array<Record<string, unknown>>> = {};
  for (const call of receiver.calls) {
    const body = JSON.parse(call.body) as Record<string, unknown>;
    (out[body.event as string] ??= []).push(body);
  }
  return out;
}

/** Holds a worker in its retry wait until shutdown, as a receiver that stays down would. */
const waitForShutdown: Sleep = (_ms, signal) =>
  new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));

describe("alerts from a running daemon", () => {
  it("sends each event once, with pool, key id, state, reason, until and time — never a token", async () => {
    // The upstream judges keys by token: one is fine, one is revoked (401, and its refresh fails), one is broken (500).
    let healthy = false;
    await using upstream = await startFakeUpstream((_req, call) => {
      if (call.path === "/oauth/token") return Response.json({ error: "invalid_grant" }, { status: 400 });
      const token = call.headers.authorization?.replace("Bearer ", "") ?? "";
      if (healthy || token.startsWith("sk-ok")) return new Response("ok");
      return new Response("no", { status: token.startsWith("sk-revoked") ? 401 : 500 });
    });
    await using receiver = await startFakeUpstream();
    const clock = new ManualClock(START);
    await using kp = await startTestDaemon(
      `
server: { addr: "127.0.0.1:0" }
tokens_file: tokens.txt
max_concurrency: 1
min_live: 3
check:
  url: ${upstream.url}/v1/models
  headers: { Authorization: "Bearer {token}" }
  failures_to_dead: 1
refresh:
  url: ${upstream.url}/oauth/token
  body: grant_type=client_credentials
alerts:
  webhooks:
    - url: ${receiver.url}/hooks/s3cret-path
      headers: { X-Hook-Token: hook-secret }
`,
      "ok,sk-ok-0123456789abcdef\nrevoked,sk-revoked-0123456789abcdef\nbroken,sk-broken-0123456789abcdef\n",
      { clock, autoCheck: false, random: () => 0.5 },
    );
    const { daemon } = kp;
    await daemon.alerts.tick(); // from here on, transitions are news

    await daemon.checker.tick();
    const lease = (await (await kp.fetch("/take")).json()) as { lease: string };
    expect((await kp.fetch("/take")).status).toBe(503); // the only live key is leased: nothing can serve
    await daemon.alerts.tick();
    await receiver.wait(5);

    // The bad keys come back.
    healthy = true;
    await kp.fetch("/release", jsonPost({ lease: lease.lease, ok: true }));
    clock.advance(10 * MINUTE);
    await daemon.checker.tick();
    await daemon.alerts.tick();
    await receiver.wait(7);
    await daemon.alerts.tick();
    await daemon.alerts.idle();

    const time = new Date(START).toISOString();
    const later = new Date(START + 10 * MINUTE).toISOString();
    const by = alertsBy(receiver);
    expect(Object.fromEntries(Object.entries(by).map(([event, list]) => [event, list.map((a) => a.key)]))).toEqual({
      key_dead: ["broken"],
      key_quarantined: ["revoked"],
      refresh_failed: ["revoked"],
      pool_exhausted: [null],
      pool_below_min_live: [null],
      key_recovered: expect.arrayContaining(["broken", "revoked"]),
    });
    expect(by.key_recovered).toHaveLength(2);
    expect(by.key_dead![0]).toEqual({
      event: "key_dead",
      pool: "default",
      key: "broken",
      state: "dead",
      from: "unknown",
      reason: expect.stringContaining("500"),
      until: null,
      time,
      message: expect.stringMatching(/^key broken in pool default is dead: /),
    });
    expect(by.key_quarantined![0]).toMatchObject({
      state: "quarantined",
      from: "unknown",
      reason: expect.stringContaining("401"),
      until: null,
      time,
    });
    expect(by.refresh_failed![0]).toMatchObject({
      pool: "default",
      state: "quarantined",
      reason: expect.stringContaining("400"),
      time,
    });
    expect(by.pool_exhausted![0]).toMatchObject({
      pool: "default",
      state: null,
      reason: expect.stringContaining("default"),
      time,
    });
    expect(by.pool_below_min_live![0]).toMatchObject({
      live: 1,
      min_live: 3,
      reason: "1 of 3 keys in rotation (min_live 3)",
      time,
    });
    expect(by.key_recovered!.find((a) => a.key === "broken")).toMatchObject({
      from: "dead",
      state: "live",
      time: later,
    });

    // Secrets stay where they belong: tokens nowhere in a payload, the hook's path nowhere in a log line.
    for (const call of receiver.calls) {
      expect(call.body).not.toContain("sk-");
      expect(call.path).toBe("/hooks/s3cret-path");
      expect(call.headers["x-hook-token"]).toBe("hook-secret");
    }
    expect(kp.logs.join("\n")).not.toContain("s3cret");
  });

  it("sends the same event for the same key at most once per repeat_sec, and only to webhooks that want it", async () => {
    await using receiver = await startFakeUpstream();
    const clock = new ManualClock(START);
    await using kp = await startTestDaemon(
      `
server: { addr: "127.0.0.1:0" }
tokens_file: tokens.txt
alerts:
  repeat_sec: 900
  webhooks:
    - url: ${receiver.url}/all
    - url: ${receiver.url}/exhausted-only
      events: [pool_exhausted]
`,
      "a,sk-a-0123456789abcdef\nb,sk-b-0123456789abcdef\n",
      { clock, autoCheck: false },
    );
    const { daemon } = kp;
    // Without a health check, a 401 quarantines a key for 300 s (upstream.quarantine_sec's default).
    const quarantineA = async () => {
      expect((await kp.fetch("/release", jsonPost({ id: "a", ok: false, status: 401 }))).status).toBe(200);
      await daemon.alerts.tick();
      await daemon.alerts.idle();
    };
    await daemon.alerts.tick();

    await quarantineA();
    expect(receiver.calls.map((c) => c.path)).toEqual(["/all"]);

    clock.advance(400_000); // the quarantine has lapsed, but repeat_sec has not
    await quarantineA();
    expect(receiver.calls).toHaveLength(1);
    expect(daemon.alerts.suppressed).toBe(1);

    clock.advance(600_000); // 1000 s after the first alert
    await quarantineA();
    expect(receiver.calls.map((c) => c.path)).toEqual(["/all", "/all"]);
    expect(alertsBy(receiver).key_quarantined!.map((a) => a.time)).toEqual([
      new Date(START).toISOString(),
      new Date(START + 1_000_000).toISOString(),
    ]);
  });

  it("keeps serving takes and proxied requests, and a bounded queue, while the receiver is down", async () => {
    await using upstream = await startFakeUpstream(() => Response.json({ ok: true }));
    const hook = await deadUrl();
    const clock = new ManualClock(START);
    const tokens = Array.from({ length: 31 }, (_, i) => `k${String(i).padStart(2, "0")},sk-${i}-0123456789abcdef`).join(
      "\n",
    );
    await using kp = await startTestDaemon(
      `
server: { addr: "127.0.0.1:0" }
tokens_file: tokens.txt
upstream: { enabled: true, base_url: ${upstream.url}, listen: "127.0.0.1:0" }
alerts:
  webhooks:
    - url: ${hook}/hook
`,
      tokens,
      {
        clock,
        autoCheck: false,
        alertDelivery: { queueLimit: 5, retryDelaysMs: [60_000, 60_000, 60_000], sleep: waitForShutdown },
      },
    );
    const { daemon } = kp;
    const gateway = Object.values(daemon.gatewayUrls)[0]!;
    const quarantine = (id: string) => kp.fetch("/release", jsonPost({ id, ok: false, status: 401 }));
    await daemon.alerts.tick();

    for (let round = 0; round < 5; round++) {
      // 30 keys quarantined: 30 distinct alerts against a queue of 5, its worker stuck retrying.
      for (let i = 1; i <= 30; i++) expect((await quarantine(`k${String(i).padStart(2, "0")}`)).status).toBe(200);
      await daemon.alerts.tick();
      expect(daemon.alerts.queued).toBeLessThanOrEqual(5);
      // k00 still serves, through the gateway and the broker.
      expect((await fetch(`${gateway}/v1/models`)).status).toBe(200);
      clock.advance(1000_000); // past repeat_sec and the quarantine: the next round's alerts are new ones
    }
    // Nothing left: the gateway answers 503 at once, and the exhaustion alert is only queued.
    for (let i = 0; i <= 30; i++) await quarantine(`k${String(i).padStart(2, "0")}`);
    expect((await fetch(`${gateway}/v1/models`)).status).toBe(503);
    expect((await kp.fetch("/take")).status).toBe(503);
    expect(daemon.alerts.queued).toBeLessThanOrEqual(5);
    expect(kp.logs.some((line) => line.includes("alert queue full"))).toBe(true);
  });
});

describe("webhook delivery", () => {
  const alert: Alert = {
    event: "key_dead",
    pool: "p",
    key: "k",
    state: "dead",
    from: "live",
    reason: "probe failed",
    until: null,
    at: START,
  };

  async function deliverOnce(answers: number[]) {
    await using receiver = await startFakeUpstream(() => new Response(null, { status: answers.shift() ?? 200 }));
    const logs: string[] = [];
    const waits: number[] = [];
    const sender = new WebhookSender({
      hook: { url: `${receiver.url}/hook`, headers: {}, format: "json" },
      logger: createLogger({ format: "json", write: (line) => logs.push(line) }),
      retryDelaysMs: [1_000, 5_000, 30_000],
      sleep: async (ms) => void waits.push(ms),
    });
    sender.enqueue(alert);
    await sender.idle();
    return { calls: receiver.calls.length, waits, logs, delivered: sender.delivered, failed: sender.failed };
  }

  it("retries a failing webhook three times with growing waits, then drops the alert with a log line", async () => {
    const result = await deliverOnce([503, 503, 503, 503]);
    expect(result).toMatchObject({ calls: 4, waits: [1_000, 5_000, 30_000], delivered: 0, failed: 1 });
    expect(JSON.parse(result.logs[0]!)).toMatchObject({
      msg: "alert dropped: webhook did not accept it",
      attempts: 4,
      error: "HTTP 503",
      key: "k",
    });
  });

  it("stops retrying once the webhook accepts, and never retries a refusal that asking again cannot change", async () => {
    expect(await deliverOnce([500, 429, 204])).toMatchObject({
      calls: 3,
      waits: [1_000, 5_000],
      delivered: 1,
      failed: 0,
      logs: [],
    });
    expect(await deliverOnce([400])).toMatchObject({ calls: 1, waits: [], delivered: 0, failed: 1 });
  });
});

describe("the take queue's onExhausted", () => {
  const noKey = new DomainError("NO_KEY_AVAILABLE", "every key in pool p is resting", 5_000);
  const cases: Array<{ name: string; exclude?: Record<string, string[]>; fails: boolean; reported: boolean }> = [
    { name: "a first take that finds no key", fails: true, reported: true },
    { name: "a take with empty exclusion lists", exclude: { p: [] }, fails: true, reported: true },
    { name: "a retry that excluded the keys it tried", exclude: { p: ["k1"] }, fails: true, reported: false },
    { name: "a take that got a key", fails: false, reported: false },
  ];
  for (const c of cases) {
    it(`${c.reported ? "reports" : "ignores"} ${c.name}`, async () => {
      const reported: string[] = [];
      const lease: Lease = { lease: "ls_1", pool: "p", id: "k2", token: "t", takenAt: 0, expiresAt: 1 };
      const store = {
        calls: 0,
        async take() {
          store.calls++;
          if (c.fails) throw noKey;
          return lease;
        },
        release: async () => ({ pool: "p", id: "k2", state: "live" as const, reason: null }),
      };
      const queue = new TakeQueue({
        store,
        clock: new ManualClock(),
        onExhausted: (pool, error) => reported.push(`${pool}: ${error.message}`),
      });
      const result = await queue.take("p", { exclude: c.exclude }).catch((error: Error) => error);
      expect(result).toBe(c.fails ? noKey : lease);
      expect(reported).toEqual(c.reported ? ["p: every key in pool p is resting"] : []);
      expect(store.calls).toBe(1);
    });
  }

  it("reports a take whose wait in line ran out", async () => {
    const reported: string[] = [];
    const clock = new ManualClock();
    const store = {
      take: async (): Promise<Lease> => {
        throw noKey;
      },
      release: async () => ({ pool: "p", id: "k2", state: "live" as const, reason: null }),
    };
    const queue = new TakeQueue({ store, clock, onExhausted: (pool) => reported.push(pool) });
    const waiting = queue.take("p", { waitMs: 1_000 }).catch((error: Error) => error);
    await queue.whenWaiting("p", 1);
    expect(reported).toEqual([]);
    clock.advance(1_000);
    await queue.tick();
    expect(await waiting).toMatchObject({ code: "NO_KEY_AVAILABLE" });
    expect(reported).toEqual(["p"]);
    queue.stop();
  });
});

describe("keypool alerts test", () => {
  function writeConfig(dir: ReturnType<typeof tempDir>, alerts: string): string {
    writeFileSync(dir.file("tokens.txt"), "a,sk-a-0123456789abcdef\n");
    writeFileSync(dir.file("keypool.yaml"), `tokens_file: tokens.txt\n${alerts}`);
    return dir.file("keypool.yaml");
  }

  it("posts a sample alert to each webhook and exits 0 when all accept it", async () => {
    await using receiver = await startFakeUpstream();
    using dir = tempDir();
    const config = writeConfig(
      dir,
      `alerts:\n  webhooks:\n    - url: ${receiver.url}/json/s3cret\n    - url: ${receiver.url}/slack/s3cret\n      format: slack\n`,
    );
    const run = await runKeypool(["alerts", "test", "-c", config]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`#1       ${receiver.url}  json    ok      HTTP 200`);
    expect(run.stdout).not.toContain("s3cret");
    const byPath = Object.fromEntries(receiver.calls.map((c) => [c.path, JSON.parse(c.body)]));
    expect(byPath["/json/s3cret"]).toMatchObject({ event: "test", pool: "default", key: "example-key" });
    expect(byPath["/slack/s3cret"]).toEqual({
      text: "[keypool] test alert for pool default: this webhook receives keypool alerts",
    });
  });

  it("exits 1 when a webhook cannot be reached or refuses, and 2 without webhooks", async () => {
    await using receiver = await startFakeUpstream(() => new Response("nope", { status: 403 }));
    const dead = await deadUrl();
    using dir = tempDir();
    const config = writeConfig(dir, `alerts:\n  webhooks:\n    - url: ${receiver.url}/a\n    - url: ${dead}/b\n`);
    const run = await runKeypool(["alerts", "test", "-c", config, "--json"]);
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout).results).toEqual([
      { webhook: 1, origin: receiver.url, format: "json", ok: false, status: 403, error: "HTTP 403" },
      { webhook: 2, origin: dead, format: "json", ok: false, error: expect.stringContaining("network error") },
    ]);

    const none = await runKeypool(["alerts", "test", "-c", writeConfig(dir, "")]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("has no alerts.webhooks");
  });
});

describe("alerts config", () => {
  const parse = (yaml: string) =>
    parseConfig(`pools: { p: { tokens_file: /dev/null } }\n${yaml}`, { baseDir: "/", env: {} });
  const issuesOf = (yaml: string) => {
    try {
      parse(yaml);
    } catch (error) {
      if (error instanceof ConfigError) return error.issues;
      throw error;
    }
    throw new Error("expected a ConfigError");
  };

  it("reads webhooks with defaults, and min_live per pool", () => {
    const config = parseConfig(
      "min_live: 2\ntokens_file: /dev/null\nalerts:\n  webhooks:\n    - url: https://hooks.example.com/x\n    - { url: https://h.example.com/y, format: slack, events: [key_dead], headers: { A: b } }\n",
      { baseDir: "/", env: {} },
    );
    expect(config.alerts).toEqual({
      repeatSec: 900,
      webhooks: [
        { url: "https://hooks.example.com/x", headers: {}, format: "json", events: undefined },
        { url: "https://h.example.com/y", headers: { A: "b" }, format: "slack", events: ["key_dead"] },
      ],
    });
    expect(config.pools.default!.minLive).toBe(2);
  });

  it("names each mistake without echoing the URL", () => {
    expect(
      issuesOf(
        "alerts:\n  repeat_sec: -1\n  webhooks:\n    - url: ftp://secret.example.com/abc\n      format: teams\n      events: [key_gone]\n    - format: json\n",
      ),
    ).toEqual([
      "alerts.repeat_sec: expected a number of seconds ≥ 0 and ≤ 604800, got -1",
      "alerts.webhooks.0.url: expected a http/https URL such as https://hooks.example.com/keypool",
      'alerts.webhooks.0.format: "teams" is not one of json, slack',
      'alerts.webhooks.0.events: "key_gone" is not one of key_dead, key_quarantined, key_recovered, pool_below_min_live, pool_exhausted, refresh_failed, budget_warning, budget_exhausted',
      "alerts.webhooks.1.url: required — where to POST alerts, e.g. https://hooks.slack.com/services/…",
    ]);
    expect(issuesOf("alerts: { webhooks: { url: x } }\n")).toEqual([
      'alerts.webhooks: expected a list of webhooks, got a mapping — start each one with "- url: …"',
    ]);
  });
});
