/**
 * Scenarios 1–4: the upstream misbehaves — cuts a stream, never answers, fails everything, or
 * rate-limits every key. The gateway must end each client's request cleanly, never duplicate what a
 * client already received, and never multiply the load on an upstream that is already failing.
 *
 * Also covered elsewhere: a stream cut mid-way ends the client's stream (test/gateway-streaming.test.ts),
 * failover after a first-byte timeout (test/gateway-retries.test.ts).
 */
import { describe, expect, it } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import { RetryBudget } from "../../src/gateway/retry-budget";
import { ManualClock } from "../../src/pool/clock";
import { type GatewayUnderTest, keyOfCall, simulated, startGateway } from "../helpers/gateway-harness";
import { type Canary, canary, leaksOf } from "./_canary";

const CANARY = canary("faults");

/** Three keys and the canary: the scenario runs with a canary in the pool. */
function tokensWithCanary(ids: string[] = ["a", "b", "c"]): Record<string, string> {
  const tokens: Record<string, string> = Object.fromEntries(ids.map((id) => [id, `sk-test-${id.padEnd(24, id)}`]));
  tokens[CANARY.id] = CANARY.token;
  return tokens;
}

/** Every key of the pool, canary included, answers as `how`. */
const everyKey = (tokens: Record<string, string>, how: "ok" | "server_error" | "rate_limited" | "revoked") =>
  simulated(Object.fromEntries(Object.keys(tokens).map((id) => [id, how])), tokens as never);

/** Fails the test if the canary shows up in the daemon's log or in anything a client received. */
function expectNoLeak(gw: GatewayUnderTest, seen: string[], canaries: Canary[] = [CANARY]): void {
  expect(leaksOf(canaries, [...gw.kp.logs, ...seen])).toEqual([]);
}

const sse = (n: number) => `data: {"n":${n}}\n\n`;

/**
 * An upstream at the TCP level: answers 200 text/event-stream with three events (chunked), then
 * either drops the connection without the final chunk or resets it. Counts connections, so a
 * silent retry would show.
 */
async function cuttingUpstream(how: "end" | "reset") {
  const sockets: Socket<undefined>[] = [];
  let requests = 0;
  const listener: TCPSocketListener<undefined> = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        sockets.push(socket);
      },
      data(socket, data) {
        if (!data.toString().includes("\r\n\r\n")) return;
        requests++;
        const chunk = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;
        socket.write(
          `HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n${chunk(sse(1))}${chunk(sse(2))}${chunk(sse(3))}`,
        );
        // Let the three events leave before the connection goes.
        setTimeout(() => (how === "reset" ? socket.terminate() : socket.end()), 50);
      },
    },
  });
  return {
    url: `http://127.0.0.1:${listener.port}`,
    get requests() {
      return requests;
    },
    stop() {
      for (const s of sockets) s.terminate();
      listener.stop(true);
    },
  };
}

/** Reads a body to its end or its error; returns what arrived and how it ended. */
async function drain(response: Response): Promise<{ text: string; ending: string }> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  try {
    for (let next = await reader.read(); !next.done; next = await reader.read())
      text += decoder.decode(next.value, { stream: true });
    return { text, ending: "ended" };
  } catch {
    return { text, ending: "errored" };
  }
}

describe("scenario 1: the upstream cuts a stream after 3 events", () => {
  for (const how of ["end", "reset"] as const) {
    it(`(${how}) the client sees the 3 events once and then an error, no retry, and the key's failure is counted`, async () => {
      const upstream = await cuttingUpstream(how);
      const tokens = tokensWithCanary(["a"]);
      await using gw = await startGateway({
        tokens,
        config: () => ({
          tokens_file: "tokens.txt",
          state_file: "state.db",
          cooldown_sec: 0,
          server: { addr: "127.0.0.1:0" },
          upstream: { listen: "127.0.0.1:0", base_url: upstream.url, cooldown_sec: 0 },
        }),
      });
      try {
        const seen: string[] = [];
        // Once per key, so whichever key serves first, each is seen cut once.
        for (let i = 0; i < 2; i++) {
          const response = await fetch(`${gw.url}/v1/chat/completions`, {
            method: "POST",
            body: JSON.stringify({ model: "m", stream: true }),
          });
          expect(response.status).toBe(200);
          const { text, ending } = await drain(response);
          seen.push(text);
          // Never a clean end that would pass a cut answer off as whole, and never an event twice.
          expect({ text, ending }).toEqual({ text: sse(1) + sse(2) + sse(3), ending: "errored" });
        }
        expect(upstream.requests).toBe(2);
        const keys = await gw.keys();
        expect(Object.values(keys).map((k) => [k.errors, k.in_flight])).toEqual([
          [1, 0],
          [1, 0],
        ]);
        expectNoLeak(gw, seen);
      } finally {
        upstream.stop();
      }
    });
  }
});

describe("scenario 2: the upstream accepts connections but never answers", () => {
  it("times out each attempt, fails over to another key, and spends the retry budget rather than every retry", async () => {
    // A TCP black hole: connections are accepted, nothing is ever read or written.
    const sockets: Socket<undefined>[] = [];
    const hole = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: { open: (s) => void sockets.push(s), data() {} },
    });
    const tokens = tokensWithCanary();
    await using gw = await startGateway({
      tokens,
      config: () => ({
        tokens_file: "tokens.txt",
        state_file: "state.db",
        cooldown_sec: 0,
        server: { addr: "127.0.0.1:0" },
        upstream: {
          listen: "127.0.0.1:0",
          base_url: `http://127.0.0.1:${hole.port}`,
          cooldown_sec: 0,
          timeout_sec: 0.3,
          max_retries: 3,
        },
      }),
    });
    try {
      const started = performance.now();
      const response = await fetch(`${gw.url}/v1/chat/completions`, { method: "POST", body: "{}" });
      const body = await response.text();
      const elapsed = performance.now() - started;
      expect(response.status).toBe(502);
      expect(JSON.parse(body).error.message).toContain("no response within 0.3s");
      // One request, one retry: 0 retries < 0.2 × 1 request, then 1 ≥ 0.2 — max_retries: 3 would have made 4 attempts.
      expect(body).toContain("after 2 attempts");
      expect(elapsed).toBeGreaterThanOrEqual(550);
      expect(elapsed).toBeLessThan(3000);
      const timedOut = Object.values(await gw.keys()).filter((k) => k.errors === 1);
      expect(timedOut).toHaveLength(2);
      expect(timedOut.every((k) => k.state === "cooling" && k.reason?.includes("timeout") && k.in_flight === 0)).toBe(
        true,
      );
      expect(gw.kp.logs.some((line) => line.includes('"retry_budget_spent":true'))).toBe(true);
      expectNoLeak(gw, [body]);
    } finally {
      for (const s of sockets) s.terminate();
      hole.stop(true);
    }
  });
});

describe("scenario 3: the upstream answers 5xx to everything", () => {
  /** 20 keys resting 0.05 s per 5xx, so keys come back while the load runs and retries have keys to go to. */
  const manyKeys = () => tokensWithCanary(Array.from({ length: 20 }, (_, i) => `k${String(i).padStart(2, "0")}`));
  const config = (extra: Record<string, unknown>) => (url: string) => ({
    tokens_file: "tokens.txt",
    state_file: "state.db",
    cooldown_sec: 0,
    server: { addr: "127.0.0.1:0" },
    backoff: { overloaded: { base_sec: 0.05, step_sec: 0, max_sec: 0.05 } },
    upstream: { listen: "127.0.0.1:0", base_url: url, cooldown_sec: 0, ...extra },
  });

  /** `total` requests sent at a steady `perSec`, each on schedule whatever the answers do; returns every answer. */
  async function steadyLoad(
    url: string,
    total: number,
    perSec: number,
  ): Promise<{ statuses: number[]; bodies: string[] }> {
    const statuses: number[] = [];
    const bodies: string[] = [];
    const started = performance.now();
    const inFlight: Promise<void>[] = [];
    for (let i = 0; i < total; i++) {
      const due = started + (i * 1000) / perSec;
      // Pacing, not waiting for a condition: the scenario is defined as a request rate.
      if (due > performance.now()) await Bun.sleep(due - performance.now());
      inFlight.push(
        (async () => {
          const response = await fetch(`${url}/v1/chat/completions`, {
            method: "POST",
            body: JSON.stringify({ model: "sim-1" }),
          });
          bodies.push(await response.text());
          statuses.push(response.status);
        })(),
      );
    }
    await Promise.all(inFlight);
    return { statuses, bodies };
  }

  it("keeps upstream attempts ≤ 1.2 × client requests, answers every request, rests keys by ladder and recovers", async () => {
    const tokens = manyKeys();
    await using gw = await startGateway({ tokens, handler: everyKey(tokens, "server_error"), config: config({}) });
    const requests = 300;
    const { statuses, bodies } = await steadyLoad(gw.url, requests, 150);

    // Every request got an answer, each the upstream's 500 or a 503 while every key rested.
    expect(statuses).toHaveLength(requests);
    expect([...new Set(statuses)].filter((s) => s !== 500 && s !== 503)).toEqual([]);
    const attempts = gw.fake.calls.length;
    console.log(
      `5xx everywhere: ${requests} client requests → ${attempts} upstream attempts (${(attempts / requests).toFixed(2)}×)`,
    );
    expect(attempts).toBeLessThanOrEqual(1.2 * requests);
    // The budget did allow some retries: the ratio is a budget, not a ban.
    expect(attempts).toBeGreaterThan(requests * 0.5);

    // The requests name sim-1, and an overloaded model is that model's (overloaded's scope): the pairs rest, not the keys.
    const { events } = (await (await gw.kp.fetch("/events?limit=1000")).json()) as {
      events: Array<{ model?: string; to: string; class: string | null }>;
    };
    const resting = events.filter((e) => e.to === "cooling");
    expect(resting.length).toBeGreaterThan(0);
    expect(resting.every((e) => e.model === "sim-1" && e.class === "overloaded")).toBe(true);

    // The upstream recovers: once the 0.05 s rests are over, keys serve again and are live.
    gw.fake.setHandler(everyKey(tokens, "ok"));
    let served = 0;
    for (let tries = 0; served < 20 && tries < 2000; tries++) {
      const response = await fetch(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        body: JSON.stringify({ model: "sim-1" }),
      });
      await response.text();
      if (response.status === 200) served++;
      else await Bun.sleep(20);
    }
    expect(served).toBe(20);
    const keys = Object.values(await gw.keys());
    expect(keys.filter((k) => k.state === "live").length).toBeGreaterThanOrEqual(10);
    expectNoLeak(gw, bodies);
  });

  it("retries every failure up to max_retries when retry_budget is raised to max_retries", async () => {
    const tokens = manyKeys();
    await using gw = await startGateway({
      tokens,
      handler: everyKey(tokens, "server_error"),
      config: config({ retry_budget: 2 }),
    });
    const { statuses } = await steadyLoad(gw.url, 60, 150);
    expect(statuses).toHaveLength(60);
    // The budget is what held attempts down above: without it a failing upstream sees up to 3× the load.
    expect(gw.fake.calls.length).toBeGreaterThan(1.5 * 60);
  });

  it("never lets a window's retries reach ratio × its requests (unit, on a manual clock)", () => {
    const clock = new ManualClock();
    const budget = new RetryBudget(0.2, clock);
    // A lone failing request at low traffic may still be retried once.
    budget.recordRequest();
    expect([budget.tryRetry(), budget.tryRetry()]).toEqual([true, false]);
    for (let i = 0; i < 99; i++) budget.recordRequest();
    let allowed = 1;
    while (budget.tryRetry()) allowed++;
    expect(allowed).toBe(20);
    // Ten seconds on, the old requests no longer vouch for new retries.
    clock.advance(10_000);
    budget.recordRequest();
    expect([budget.tryRetry(), budget.tryRetry()]).toEqual([true, false]);
    expect(new RetryBudget(0, clock).tryRetry()).toBe(false);
  });
});

describe("scenario 4: every key answers 429 with Retry-After: 2", () => {
  it("answers 429/503 with a Retry-After of at most 2 s and calls the upstream once per key, however many clients ask", async () => {
    const tokens = tokensWithCanary();
    await using gw = await startGateway({
      tokens,
      handler: () =>
        Response.json(
          { error: { message: "Rate limit reached for requests" } },
          { status: 429, headers: { "retry-after": "2" } },
        ),
      upstream: { max_retries: 5 },
    });
    const answers: Array<{ status: number; retryAfter: string | null; body: string }> = [];
    const ask = async () => {
      const response = await fetch(`${gw.url}/v1/chat/completions`, { method: "POST", body: "{}" });
      answers.push({
        status: response.status,
        retryAfter: response.headers.get("retry-after"),
        body: await response.text(),
      });
    };
    // One after another, then 50 at once: all within the 2 s the keys rest.
    for (let i = 0; i < 10; i++) await ask();
    await Promise.all(Array.from({ length: 50 }, ask));

    expect(gw.fake.calls.length).toBe(Object.keys(tokens).length);
    expect(answers[0]!.status).toBe(429);
    expect(answers.slice(1).every((a) => a.status === 503)).toBe(true);
    expect(answers.every((a) => ["1", "2"].includes(a.retryAfter ?? ""))).toBe(true);
    expectNoLeak(
      gw,
      answers.map((a) => a.body),
    );
  });

  it("tells the client when the first key is back, not when the last one tried is", async () => {
    const tokens = {
      a: "sk-test-aaaaaaaaaaaaaaaaaaaaaaaa",
      b: "sk-test-bbbbbbbbbbbbbbbbbbbbbbbb",
      c: "sk-test-cccccccccccccccccccccccc",
    };
    // a is back in 1 s, b and c in 30 s; whichever order they are tried in, the answer says 1.
    const after = { a: "1", b: "30", c: "30" };
    await using gw = await startGateway({
      tokens,
      handler: (_req, call) =>
        Response.json(
          { error: { message: "slow down" } },
          { status: 429, headers: { "retry-after": after[keyOfCall(call, tokens) as "a"] } },
        ),
      upstream: { max_retries: 5 },
    });
    const response = await fetch(`${gw.url}/v1/chat/completions`, { method: "POST", body: "{}" });
    expect([response.status, response.headers.get("retry-after"), gw.fake.calls.length]).toEqual([429, "1", 3]);
  });
});
