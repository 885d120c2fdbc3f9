/**
 * A key's per-model state is visible wherever a key's state is: /status, /events, `keypool status` and
 * /metrics. Failures are reported through POST /release with the request's model, as a broker client does.
 */
import { describe, expect, it } from "bun:test";
import { OTHER_MODELS } from "../src/metrics/model-series";
import { ManualClock } from "../src/pool/clock";
import { jsonPost, startTestDaemon } from "./helpers/daemon";
import { parsePrometheusText, sampleValue } from "./helpers/prometheus-text";
import { runKeypool } from "./helpers/run-keypool";
import { canary, leaksOf } from "./reliability/_canary";

const ADMIN_KEY = "vis-admin-key-12345678";
const KEY = { apiKey: ADMIN_KEY };
const CONFIG = `tokens_file: tokens.txt\nstate_file: state.db\nserver:\n  addr: 127.0.0.1:0\n  api_key: ${ADMIN_KEY}\n`;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/**
 * A daemon whose key `a` (a canary) got a 429 on m-big and a "no access" answer for m-x, each quoting the
 * token as some upstreams do; key `b` is restricted to two models by its tokens-file line.
 */
async function restedDaemon() {
  const a = canary("models");
  const clock = new ManualClock();
  const kp = await startTestDaemon(
    CONFIG,
    `a,${a.token}\nb,sk-test-bbbbbbbbbbbbbbbbbbbbbbbb,1,models=m-small|m-mid\nc,sk-test-cccccccccccccccccccccccc\n`,
    // No jitter, so each rest ends exactly a rung's length later.
    { clock, random: () => 0 },
  );
  const release = async (body: object) => {
    const response = await kp.fetch("/release", { ...jsonPost({ id: "a", ok: false, ...body }), ...KEY });
    expect(response.status).toBe(200);
    return response.json();
  };
  await release({ status: 429, model: "m-big", error_body: `Rate limit reached on m-big for key ${a.token}` });
  await release({
    status: 404,
    model: "m-x",
    error_body: `{"error":{"code":"model_not_found","message":"The model m-x does not exist (${a.token})"}}`,
  });
  return { kp, clock, canary: a, release };
}

const iso = (ms: number) => new Date(ms).toISOString();

describe("a key's per-model state", () => {
  it("is in /status as models and only_models, beside poolctl's fields, until each rest ends", async () => {
    const { kp, clock } = await restedDaemon();
    await using _ = kp;
    const now = clock.now();
    const body = await (await kp.fetch("/status", KEY)).json();
    const byId = Object.fromEntries(body.keys.map((k: { id: string }) => [k.id, k]));
    expect(byId.a).toMatchObject({
      // The key itself rests for nothing: its other models keep using it.
      state: "unknown",
      until: null,
      models: {
        "m-big": { state: "cooling", until: iso(now + MINUTE), reason: expect.stringContaining("rate_limit") },
        "m-x": { state: "denied", until: iso(now + 6 * HOUR), reason: expect.stringContaining("no access") },
      },
      only_models: null,
    });
    expect(byId.b).toMatchObject({ models: {}, only_models: ["m-small", "m-mid"] });
    // poolctl's shape holds: a pair's rest is not the key's, so poolctl's cooling flag stays down.
    expect(body.tokens.find((t: { id: string }) => t.id === "a")).toEqual({
      id: "a",
      pool: "default",
      weight: 1,
      status: "unknown",
      last_check: "0001-01-01T00:00:00Z",
      last_used: expect.any(String),
      cooling: false,
      fails: 0,
      requests: expect.any(Number),
      errors: expect.any(Number),
      last_status: 0,
    });
    expect(body.cooling).toBe(0);

    clock.advance(MINUTE);
    const later = await (await kp.fetch("/status", KEY)).json();
    expect(Object.keys(later.keys.find((k: { id: string }) => k.id === "a").models)).toEqual(["m-x"]);
  });

  it("is in /events: each change of a pair names its model", async () => {
    const { kp, clock } = await restedDaemon();
    await using _ = kp;
    const now = clock.now();
    const { events } = await (await kp.fetch("/events?key=a", KEY)).json();
    expect(events).toEqual([
      {
        at: iso(now),
        pool: "default",
        key: "a",
        model: "m-big",
        from: "ready",
        to: "cooling",
        class: "rate_limit",
        reason: expect.stringContaining("rate_limit"),
        until: iso(now + MINUTE),
      },
      {
        at: iso(now),
        pool: "default",
        key: "a",
        model: "m-x",
        from: "ready",
        to: "denied",
        class: null,
        reason: expect.stringContaining("no access"),
        until: iso(now + 6 * HOUR),
      },
    ]);
  });

  it("is in keypool status, as a table under the keys and with --json", async () => {
    const { kp } = await restedDaemon();
    await using _ = kp;
    const env = { KEYPOOL_API_KEY: ADMIN_KEY };
    const plain = await runKeypool(["status", "--url", kp.url], { env });
    expect([plain.code, plain.stderr]).toEqual([0, ""]);
    const lines = plain.stdout.split("\n");
    const title = lines.findIndex((l) => l.startsWith("models resting or denied"));
    expect(lines.slice(title + 2, title + 4).map((l) => l.split(/\s{2,}/).slice(0, 3))).toEqual([
      ["a", "m-big", "cooling"],
      ["a", "m-x", "denied"],
    ]);
    expect(lines.find((l) => l.startsWith("b "))).toContain("m-small|m-mid");

    const json = await runKeypool(["status", "--url", kp.url, "--json"], { env });
    expect(json.code).toBe(0);
    const a = JSON.parse(json.stdout).keys.find((k: { id: string }) => k.id === "a");
    expect(Object.keys(a.models).sort()).toEqual(["m-big", "m-x"]);
  });

  it("is in /metrics: pairs per pool and state, and keys per model for at most 20 models a pool", async () => {
    const { kp, release } = await restedDaemon();
    await using _ = kp;
    const scrape = async () => parsePrometheusText(await (await kp.fetch("/metrics")).text());
    let samples = await scrape();
    expect(sampleValue(samples, "keypool_model_pairs", { pool: "default", state: "cooling" })).toBe(1);
    expect(sampleValue(samples, "keypool_model_pairs", { pool: "default", state: "denied" })).toBe(1);
    expect(sampleValue(samples, "keypool_model_keys", { pool: "default", model: "m-big", state: "cooling" })).toBe(1);
    expect(sampleValue(samples, "keypool_model_keys", { pool: "default", model: "m-x", state: "denied" })).toBe(1);

    // A client naming 30 more models adds at most 20 series; the rest are counted under one.
    for (let i = 0; i < 30; i++) await release({ status: 429, model: `burst-${String(i).padStart(2, "0")}` });
    samples = await scrape();
    const series = samples.filter((s) => s.name === "keypool_model_keys");
    expect(new Set(series.map((s) => s.labels.model)).size).toBe(21);
    expect(series.reduce((n, s) => n + s.value, 0)).toBe(32);
    expect(sampleValue(samples, "keypool_model_keys", { model: OTHER_MODELS, state: "cooling" })).toBe(11);
    expect(sampleValue(samples, "keypool_model_pairs", { pool: "default", state: "cooling" })).toBe(31);
  });
});

describe("a release's model", () => {
  it("is refused unless it is a model name, so nothing else becomes a pair, a label or a line of /status", async () => {
    const { kp } = await restedDaemon();
    await using _ = kp;
    for (const model of ['x"} 1\nkeypool_fake{a="b', "", "has space", "-leading-dash"]) {
      const response = await kp.fetch("/release", { ...jsonPost({ id: "b", ok: false, status: 429, model }), ...KEY });
      expect([response.status, (await response.json()).error.message]).toEqual([
        400,
        expect.stringMatching(/^model: not a model name — give the name the provider uses/),
      ]);
    }
    const body = await (await kp.fetch("/status", KEY)).json();
    expect(body.keys.find((k: { id: string }) => k.id === "b")).toMatchObject({ state: "unknown", models: {} });
    const models = parsePrometheusText(await (await kp.fetch("/metrics")).text())
      .filter((s) => s.name === "keypool_model_keys")
      .map((s) => s.labels.model);
    expect(models.sort()).toEqual(["m-big", "m-x"]);
  });
});

describe("a key's per-model state and secrets", () => {
  it("shows no token in /status, /events, /metrics or keypool status, though the upstream quoted it", async () => {
    const { kp, canary: a } = await restedDaemon();
    await using _ = kp;
    const status = await (await kp.fetch("/status", KEY)).text();
    // The canary is in the pool, and its pairs are shown: there was something to leak.
    expect(JSON.parse(status).keys.find((k: { id: string }) => k.id === "a").models).toHaveProperty("m-x");
    const env = { KEYPOOL_API_KEY: ADMIN_KEY };
    const seen = [
      status,
      await (await kp.fetch("/events", KEY)).text(),
      await (await kp.fetch("/metrics")).text(),
      (await runKeypool(["status", "--url", kp.url], { env })).stdout,
      (await runKeypool(["status", "--url", kp.url, "--json"], { env })).stdout,
      ...kp.logs,
    ];
    expect(leaksOf([a], seen)).toEqual([]);
  });
});
