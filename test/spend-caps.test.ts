import Anthropic from "@anthropic-ai/sdk";
import { describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import OpenAI from "openai";
import YAML from "yaml";
import { DomainError, openPool } from "../src/lib/index";
import { ManualClock } from "../src/pool/clock";
import { jsonPost, startTestDaemon } from "./helpers/daemon";
import { startFakeUpstream } from "./helpers/fake-upstream";
import { type ProxyProcess, spawnProxy } from "./helpers/gateway-process";
import { type GatewayUnderTest, TOKENS, keyOfCall, startGateway } from "./helpers/gateway-harness";
import { tempDir } from "./helpers/temp-dir";
import { canary, leaksOf } from "./reliability/_canary";
import { PRICES, usageUpstream } from "./helpers/usage-upstream";

/** Noon UTC: the day's window resets twelve hours on, at midnight. */
const NOON = Date.UTC(2026, 0, 14, 12);
const MIDNIGHT = Date.UTC(2026, 0, 15);

const ANTHROPIC = { auth_header: "x-api-key", auth_template: "{token}" };

/**
 * Pools `openai` and `anthropic` in front of the usage-reporting upstream, both from one tokens file:
 * key a may spend $0.001 a day (two answers at $0.0005), key b has no cap. Round robin, so a is
 * asked every other request until it is spent.
 */
function startCappedGateway(clock: ManualClock, pool: Record<string, unknown> = {}) {
  const upstream = (fakeUrl: string, extra: Record<string, unknown> = {}) => ({
    listen: "127.0.0.1:0",
    base_url: fakeUrl,
    cooldown_sec: 0,
    ...extra,
  });
  return startGateway({
    handler: usageUpstream,
    tokens: { a: `${TOKENS.a},1,budget_day=0.001`, b: TOKENS.b },
    daemon: { clock },
    config: (fakeUrl) => ({
      state_file: "state.db",
      cooldown_sec: 0,
      server: { addr: "127.0.0.1:0" },
      prices: PRICES,
      pools: {
        openai: { tokens_file: "tokens.txt", rotation: "round_robin", upstream: upstream(fakeUrl), ...pool },
        anthropic: {
          tokens_file: "tokens.txt",
          rotation: "round_robin",
          upstream: upstream(fakeUrl, ANTHROPIC),
          ...pool,
        },
      },
    }),
  });
}

/** Which key served each upstream call from `from` on. */
const servedBy = (gw: GatewayUnderTest, from = 0) => gw.fake.calls.slice(from).map((call) => keyOfCall(call));

const count = (ids: Array<string | undefined>, id: string) => ids.filter((x) => x === id).length;

interface PoolKeyJson {
  id: string;
  pool: string;
  state: string;
  reason: string | null;
  until: string | null;
}

async function keyIn(gw: GatewayUnderTest, pool: string, id: string): Promise<PoolKeyJson> {
  const body = (await (await gw.kp.fetch(`/status?pool=${pool}`)).json()) as { keys: PoolKeyJson[] };
  const key = body.keys.find((k) => k.pool === pool && k.id === id);
  if (!key) throw new Error(`no key ${pool}/${id} in /status`);
  return key;
}

describe("a key's daily spend cap through the gateway", () => {
  it("stops using the key once its JSON answers' usage reaches the cap, and uses it again at the UTC reset (OpenAI SDK)", async () => {
    const clock = new ManualClock(NOON);
    await using gw = await startCappedGateway(clock);
    const client = new OpenAI({ apiKey: "unused", baseURL: `${gw.url}/openai/v1`, maxRetries: 0 });
    const ask = () => client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }] });

    for (let i = 0; i < 6; i++) expect((await ask()).usage?.total_tokens).toBe(500);
    // a served until it had spent $0.001, then b served every request.
    const before = servedBy(gw);
    expect([count(before, "a"), count(before, "b")]).toEqual([2, 4]);
    expect(before.slice(-2)).toEqual(["b", "b"]);
    expect(await keyIn(gw, "openai", "a")).toMatchObject({
      state: "cooling",
      reason: "budget: $0.001 of $0.001 today",
      until: new Date(MIDNIGHT).toISOString(),
    });
    // The same key in the other pool has its own cap and has spent nothing.
    expect((await keyIn(gw, "anthropic", "a")).state).not.toBe("cooling");

    clock.set(MIDNIGHT);
    expect((await keyIn(gw, "openai", "a")).state).not.toBe("cooling");
    for (let i = 0; i < 2; i++) await ask();
    expect(count(servedBy(gw, 6), "a")).toBe(1);
  });

  it("counts the usage of streamed answers (Anthropic SDK, SSE) the same way", async () => {
    const clock = new ManualClock(NOON);
    await using gw = await startCappedGateway(clock);
    const client = new Anthropic({ apiKey: "unused", baseURL: `${gw.url}/anthropic`, maxRetries: 0 });
    const ask = async () => {
      const stream = client.messages.stream({
        model: "m",
        max_tokens: 16,
        messages: [{ role: "user", content: "hi" }],
      });
      return (await stream.finalMessage()).usage.output_tokens;
    };

    for (let i = 0; i < 6; i++) expect(await ask()).toBe(200);
    const before = servedBy(gw);
    expect([count(before, "a"), count(before, "b")]).toEqual([2, 4]);
    expect(await keyIn(gw, "anthropic", "a")).toMatchObject({
      state: "cooling",
      reason: "budget: $0.001 of $0.001 today",
      until: new Date(MIDNIGHT).toISOString(),
    });

    clock.set(MIDNIGHT);
    for (let i = 0; i < 2; i++) await ask();
    expect(count(servedBy(gw, 6), "a")).toBe(1);
  });
});

/** Pools `solo` (capped, alone), `main` (capped, falling back to `backup`) and `backup`, all three keys in each. */
function startPoolCapGateway(clock: ManualClock) {
  return startGateway({
    handler: usageUpstream,
    daemon: { clock },
    config: (fakeUrl) => {
      const upstream = { listen: "127.0.0.1:0", base_url: fakeUrl, cooldown_sec: 0 };
      const pool = { tokens_file: "tokens.txt", upstream };
      return {
        state_file: "state.db",
        cooldown_sec: 0,
        server: { addr: "127.0.0.1:0" },
        prices: PRICES,
        pools: {
          solo: { ...pool, budget: { day: 0.001 } },
          main: { ...pool, budget: { day: 0.001 }, fallback: ["backup"] },
          backup: pool,
        },
      };
    },
  });
}

const chat = (gw: GatewayUnderTest, pool: string) =>
  fetch(`${gw.url}/${pool}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }),
  });

async function okFrom(gw: GatewayUnderTest, pool: string): Promise<string | null> {
  const response = await chat(gw, pool);
  expect(response.status).toBe(200);
  await response.text();
  return response.headers.get("x-keypool-pool");
}

describe("a pool's daily spend cap", () => {
  it("answers 503 budget_exhausted with Retry-After until the UTC reset, at the gateway and at /take", async () => {
    const clock = new ManualClock(NOON);
    await using gw = await startPoolCapGateway(clock);
    // Two answers at $0.0005, from different keys: the pool's total is what reaches the cap.
    expect([await okFrom(gw, "solo"), await okFrom(gw, "solo")]).toEqual(["solo", "solo"]);
    expect(new Set(servedBy(gw)).size).toBe(2);

    const refused = await chat(gw, "solo");
    expect({
      status: refused.status,
      retryAfter: refused.headers.get("retry-after"),
      code: ((await refused.json()) as { error: { code: string } }).error.code,
    }).toEqual({ status: 503, retryAfter: String((MIDNIGHT - NOON) / 1000), code: "budget_exhausted" });
    // Refused before any key was taken: the upstream saw two requests.
    expect(gw.fake.calls.length).toBe(2);

    const take = await gw.kp.fetch("/take?pool=solo");
    expect({
      status: take.status,
      retryAfter: take.headers.get("retry-after"),
      code: ((await take.json()) as { error: { code: string } }).error.code,
    }).toEqual({ status: 503, retryAfter: String((MIDNIGHT - NOON) / 1000), code: "BUDGET_EXHAUSTED" });

    clock.set(MIDNIGHT);
    expect(await okFrom(gw, "solo")).toBe("solo");
  });

  it("passes a spent pool over for its fallback, which serves until the reset", async () => {
    const clock = new ManualClock(NOON);
    await using gw = await startPoolCapGateway(clock);
    const pools: Array<string | null> = [];
    for (let i = 0; i < 4; i++) pools.push(await okFrom(gw, "main"));
    expect(pools).toEqual(["main", "main", "backup", "backup"]);
    const take = await gw.kp.fetch("/take?pool=main");
    expect([take.status, ((await take.json()) as { pool: string }).pool]).toEqual([200, "backup"]);

    clock.set(MIDNIGHT);
    expect(await okFrom(gw, "main")).toBe("main");
  });
});

const BROKER_CONFIG = `
server: { addr: "127.0.0.1:0" }
state_file: state.db
tokens_file: tokens.txt
cooldown_sec: 0
rotation: round_robin
budget: { day: 0.001 }
prices: { m: { input_per_mtok: 1, output_per_mtok: 1 } }
`;
const BROKER_TOKENS = `a,${TOKENS.a},1,budget_day=0.0005\nb,${TOKENS.b}\n`;
const USED = { input_tokens: 300, output_tokens: 200, model: "m" };

describe("spend caps at the broker", () => {
  it("counts /release's usage and model: the key rests at its cap, then /take answers 503 BUDGET_EXHAUSTED", async () => {
    const clock = new ManualClock(NOON);
    await using kp = await startTestDaemon(BROKER_CONFIG, BROKER_TOKENS, { clock, autoCheck: false });
    const takeAndSpend = async () => {
      const lease = (await (await kp.fetch("/take")).json()) as { lease: string; id: string };
      const released = await kp.fetch("/release", jsonPost({ lease: lease.lease, ok: true, ...USED }));
      return { id: lease.id, ...((await released.json()) as { state: string; reason: string | null }) };
    };
    // a reaches its own $0.0005 at once and rests; b's spend then brings the pool to its $0.001.
    const first = await takeAndSpend();
    const second = await takeAndSpend();
    expect([first, second].sort((x, y) => x.id.localeCompare(y.id))).toEqual([
      { id: "a", ok: true, pool: "default", state: "cooling", reason: "budget: $0.0005 of $0.0005 today" },
      { id: "b", ok: true, pool: "default", state: "live", reason: null },
    ] as never);

    const take = await kp.fetch("/take");
    expect({
      status: take.status,
      retryAfter: take.headers.get("retry-after"),
      error: ((await take.json()) as { error: { code: string; message: string } }).error,
    }).toEqual({
      status: 503,
      retryAfter: String((MIDNIGHT - NOON) / 1000),
      error: {
        code: "BUDGET_EXHAUSTED",
        message: 'pool "default" has spent its budget: $0.001 of $0.001 today; retry in 12h',
      },
    });

    clock.set(MIDNIGHT);
    expect((await kp.fetch("/take")).status).toBe(200);
  });

  it("applies a cap changed in the tokens file at the reload: a raised cap frees the key, a lowered one rests it", async () => {
    const clock = new ManualClock(NOON);
    await using kp = await startTestDaemon(BROKER_CONFIG.replace("budget: { day: 0.001 }\n", ""), BROKER_TOKENS, {
      clock,
      autoCheck: false,
    });
    const spend = async (id: string) =>
      (await (await kp.fetch("/release", jsonPost({ id, ok: true, ...USED }))).json()) as { reason: string | null };
    const reload = async (tokens: string) => {
      writeFileSync(kp.dir.file("tokens.txt"), tokens);
      expect((await kp.fetch("/reload", { method: "POST" })).status).toBe(200);
      const body = (await (await kp.fetch("/status")).json()) as { keys: Array<{ id: string; state: string }> };
      return Object.fromEntries(body.keys.map((k) => [k.id, k.state]));
    };
    // a spends its $0.0005 and rests; b spends as much with no cap yet.
    expect((await spend("a")).reason).toBe("budget: $0.0005 of $0.0005 today");
    await spend("b");
    expect(await reload(`a,${TOKENS.a},1,budget_day=0.01\nb,${TOKENS.b},1,budget_day=0.0005\n`)).toEqual({
      a: "live",
      b: "cooling",
    });
  });

  it("counts the library's release with usage against the same caps", async () => {
    const clock = new ManualClock(NOON);
    using dir = tempDir();
    writeFileSync(dir.file("tokens.txt"), BROKER_TOKENS);
    writeFileSync(dir.file("keypool.yaml"), BROKER_CONFIG);
    await using pool = await openPool({ config: dir.file("keypool.yaml"), stateFile: dir.file("lib.db"), clock });
    const usage = { input: 300, output: 200 };
    for (let i = 0; i < 2; i++) await pool.release(await pool.take(), { ok: true, usage, model: "m" });
    const refused = await pool.take().catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(DomainError);
    expect({
      code: (refused as DomainError).code,
      retryAfterMs: (refused as DomainError).retryAfterMs,
    }).toEqual({ code: "BUDGET_EXHAUSTED", retryAfterMs: MIDNIGHT - NOON });
    // Nobody waits in line for a reset hours away: a take that may wait a minute is refused at once.
    expect(await pool.take({ waitMs: 60_000 }).catch((error: DomainError) => error.code)).toBe("BUDGET_EXHAUSTED");
    const status = await pool.status();
    expect(status.keys.find((k) => k.id === "a")?.reason).toBe("budget: $0.0005 of $0.0005 today");
  });
});

describe("spend cap alerts", () => {
  it("sends budget_warning at 80% and budget_exhausted at 100% once per window, for the key and the pool, with no token", async () => {
    await using receiver = await startFakeUpstream();
    const clock = new ManualClock(NOON);
    const key = canary("budget");
    // $0.0004 an answer (300 in at $1, 200 out at $0.50): the 2nd reaches 80% of $0.001, the 3rd passes 100%.
    await using gw = await startGateway({
      handler: usageUpstream,
      tokens: { [key.id]: `${key.token},1,budget_day=0.001` },
      daemon: { clock },
      config: (fakeUrl) => ({
        tokens_file: "tokens.txt",
        state_file: "state.db",
        cooldown_sec: 0,
        server: { addr: "127.0.0.1:0" },
        budget: { day: 0.001 },
        prices: { m: { input_per_mtok: 1, output_per_mtok: 0.5 } },
        upstream: { listen: "127.0.0.1:0", base_url: fakeUrl, cooldown_sec: 0 },
        alerts: { webhooks: [{ url: `${receiver.url}/hook` }] },
      }),
    });
    const { alerts } = gw.kp.daemon;
    await alerts.tick(); // from here on, events are news
    const spendWindow = async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        const response = await chat(gw, "default");
        await response.text();
        statuses.push(response.status);
        await alerts.tick();
      }
      await alerts.idle();
      return statuses;
    };
    const sent = () =>
      receiver.calls.map((call) => {
        const body = JSON.parse(call.body) as { event: string; key: string | null; until: string | null };
        return [body.event, body.key, body.until];
      });

    // Past the cap the key rests and the pool refuses: nothing more is spent, nothing more is sent.
    expect(await spendWindow()).toEqual([200, 200, 200, 503, 503]);
    const reset = new Date(MIDNIGHT).toISOString();
    const oneWindow = (until: string) =>
      expect.arrayContaining([
        ["budget_warning", key.id, null],
        ["budget_warning", null, null],
        ["budget_exhausted", key.id, until],
        ["budget_exhausted", null, until],
      ]);
    expect(sent()).toEqual(oneWindow(reset));
    expect(sent()).toHaveLength(4);

    clock.set(MIDNIGHT);
    expect(await spendWindow()).toEqual([200, 200, 200, 503, 503]);
    expect(sent()).toHaveLength(8);
    expect(sent().slice(4)).toEqual(oneWindow(new Date(MIDNIGHT + 86_400_000).toISOString()));

    // The canary reached the upstream, and nowhere else.
    expect(gw.fake.calls.some((call) => call.headers.authorization === `Bearer ${key.token}`)).toBe(true);
    expect(leaksOf([key], [...receiver.calls.map((c) => c.body), ...gw.kp.logs])).toEqual([]);
  });
});

/** A config for `keypool proxy` processes sharing `shared.db` in `dir`, in front of `fakeUrl`. */
function writeSharedConfig(dir: ReturnType<typeof tempDir>, fakeUrl: string, tokens: string, pool = {}): string {
  writeFileSync(dir.file("tokens.txt"), tokens);
  writeFileSync(
    dir.file("keypool.yaml"),
    YAML.stringify({
      tokens_file: dir.file("tokens.txt"),
      state_file: dir.file("shared.db"),
      cooldown_sec: 0,
      server: { addr: "127.0.0.1:0" },
      prices: PRICES,
      upstream: { listen: "127.0.0.1:0", base_url: fakeUrl, cooldown_sec: 0 },
      ...pool,
    }),
  );
  return dir.file("keypool.yaml");
}

/**
 * One chat completion through a process's gateway: 200, or the status and error code. The gateway
 * answers first and counts the cost in the event-loop turn after, so the process is then asked for
 * its /health: once it answers that, the cost is in the file for the other process to see.
 */
async function askThrough(proxy: ProxyProcess): Promise<200 | string> {
  const response = await fetch(`${proxy.gatewayUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }),
  });
  const text = await response.text();
  expect((await fetch(`${proxy.apiUrl}/health`)).status).toBe(200);
  return response.status === 200 ? 200 : `${response.status} ${JSON.parse(text).error.code}`;
}

describe("caps across two processes on one state file", () => {
  it("stops both together: past the pool's cap only what was already in flight is spent", async () => {
    using dir = tempDir();
    let gate = Promise.withResolvers<void>();
    await using fake = await startFakeUpstream(async (req, call) => {
      await gate.promise;
      return usageUpstream(req, call);
    });
    gate.resolve();
    const tokens = `a,${TOKENS.a}\nb,${TOKENS.b}\nc,${TOKENS.c}\n`;
    // Four answers at $0.0005.
    const config = writeSharedConfig(dir, fake.url, tokens, { budget: { day: 0.002 } });
    await using one = await spawnProxy(config);
    await using two = await spawnProxy(config);
    const ask = askThrough;

    // $0.0015 spent, by turns; then four requests at once, two through each, all taken before any is answered.
    expect([await ask(one), await ask(two), await ask(one)]).toEqual([200, 200, 200]);
    gate = Promise.withResolvers<void>();
    const burst = Promise.all([ask(one), ask(two), ask(one), ask(two)]);
    await fake.wait(7);
    gate.resolve();
    expect(await burst).toEqual([200, 200, 200, 200]);

    // The cap was passed by the four in flight when it was reached, and by nothing after: both refuse.
    expect([await ask(one), await ask(two)]).toEqual(["503 budget_exhausted", "503 budget_exhausted"]);
    expect(fake.calls).toHaveLength(7);
    const usage = (await (await fetch(`${two.apiUrl}/pools/default/usage?window=day`)).json()) as {
      totals: { requests: number; cost_usd: number };
    };
    expect([usage.totals.requests, usage.totals.cost_usd]).toEqual([7, 0.0035]);
    expect([(await one.stop()).code, (await two.stop()).code]).toEqual([0, 0]);
  });

  it("rests a capped key in both once its spend through either reaches the key's cap", async () => {
    using dir = tempDir();
    await using fake = await startFakeUpstream(usageUpstream);
    const config = writeSharedConfig(dir, fake.url, `a,${TOKENS.a},1,budget_day=0.001\n`);
    await using one = await spawnProxy(config);
    await using two = await spawnProxy(config);

    // One answer through each ($0.0005 apiece) spends the key's $0.001: neither process hands it out again.
    const answers = [await askThrough(one), await askThrough(two), await askThrough(one), await askThrough(two)];
    expect(answers).toEqual([200, 200, "503 no_key_available", "503 no_key_available"]);
    expect(fake.calls).toHaveLength(2);
    for (const proxy of [one, two]) {
      const status = (await (await fetch(`${proxy.apiUrl}/status`)).json()) as {
        keys: Array<{ state: string; reason: string }>;
      };
      expect(status.keys[0]).toMatchObject({ state: "cooling", reason: "budget: $0.001 of $0.001 today" });
    }
  });
});
