import Anthropic from "@anthropic-ai/sdk";
import { describe, expect, it } from "bun:test";
import OpenAI from "openai";
import { ManualClock } from "../src/pool/clock";
import { SIMULATED_TEXT } from "../src/demo/simulated-upstream";
import { type FakeHandler, startFakeUpstream } from "./helpers/fake-upstream";
import { type GatewayUnderTest, startGateway } from "./helpers/gateway-harness";
import { callsOf, perModelUpstream } from "./helpers/model-upstream";
import { POSTGRES_URL, announceSkip, freshSchema } from "./helpers/postgres";
import { canary, leaksOf } from "./reliability/_canary";

announceSkip("test/gateway-models.test.ts");

// Model-aware keys through the gateway, with the real SDKs (their retries off, so every retry the
// upstream sees is the gateway's) and a clock that stands still until a test moves it.
const BIG = "m-big";
const SMALL = "m-small";
const HOUR = 3600_000;
const ANTHROPIC_UPSTREAM = { auth_header: "x-api-key", auth_template: "{token}" };

const openai = (url: string) => new OpenAI({ apiKey: "unused", baseURL: `${url}/v1`, maxRetries: 0 });
const anthropic = (url: string) => new Anthropic({ apiKey: "unused", baseURL: url, maxRetries: 0 });

interface Served {
  text: string | null | undefined;
  key: string;
  attempts: string;
}

async function askOpenAI(client: OpenAI, model: string): Promise<Served> {
  const { data, response } = await client.chat.completions
    .create({ model, messages: [{ role: "user", content: "hi" }] })
    .withResponse();
  return {
    text: data.choices[0]!.message.content,
    key: response.headers.get("x-keypool-key")!,
    attempts: response.headers.get("x-keypool-attempts")!,
  };
}

async function askAnthropic(client: Anthropic, model: string): Promise<Served> {
  const { data, response } = await client.messages
    .create({ model, max_tokens: 16, messages: [{ role: "user", content: "hi" }] })
    .withResponse();
  return {
    text: data.content.map((block) => (block.type === "text" ? block.text : block.type)).join(""),
    key: response.headers.get("x-keypool-key")!,
    attempts: response.headers.get("x-keypool-attempts")!,
  };
}

/** Asks `n` times; every answer must be the simulated text (the client never sees a 429 or a 404). */
async function served(ask: () => Promise<Served>, n: number): Promise<string[]> {
  const keys: string[] = [];
  for (let i = 0; i < n; i++) {
    const answer = await ask();
    expect(answer.text).toBe(SIMULATED_TEXT);
    keys.push(answer.key);
  }
  return keys;
}

/** Asks until the upstream has seen `key` for `model` `times` times (each ask still answered); at most `limit` asks. */
async function askUntilTried(gw: GatewayUnderTest, ask: () => Promise<Served>, key: string, model: string, times = 1) {
  for (let i = 0; i < 6 && callsOf(gw.fake.calls, key, model) < times; i++) await served(ask, 1);
  expect(callsOf(gw.fake.calls, key, model)).toBe(times);
}

/** Where the gateway's daemon keeps its state: SQLite, or a fresh PostgreSQL schema when one is given. */
interface Backend {
  name: string;
  start(handler: FakeHandler, clock: ManualClock, upstream?: Record<string, unknown>): Promise<GatewayUnderTest>;
}

const SQLITE: Backend = {
  name: "SQLite",
  start: (handler, clock, upstream) => startGateway({ handler, upstream, daemon: { clock, random: () => 0 } }),
};

const POSTGRES: Backend = {
  name: "PostgreSQL",
  async start(handler, clock, upstream = {}) {
    const schema = await freshSchema();
    let gw: GatewayUnderTest;
    try {
      gw = await startGateway({
        handler,
        daemon: { clock, random: () => 0 },
        config: (fakeUrl) => ({
          tokens_file: "tokens.txt",
          store: { postgres: { url: schema.url } },
          cooldown_sec: 0,
          server: { addr: "127.0.0.1:0" },
          upstream: { listen: "127.0.0.1:0", base_url: fakeUrl, cooldown_sec: 0, ...upstream },
        }),
      });
    } catch (error) {
      await schema[Symbol.asyncDispose]();
      throw error;
    }
    const dispose = gw[Symbol.asyncDispose];
    return Object.assign(gw, {
      async [Symbol.asyncDispose]() {
        await dispose();
        await schema[Symbol.asyncDispose]();
      },
    });
  },
};

const BACKENDS = POSTGRES_URL ? [SQLITE, POSTGRES] : [SQLITE];

for (const backend of BACKENDS) {
  describe(`gateway with model-aware keys (OpenAI SDK, ${backend.name})`, () => {
    it("moves m-big off a key its 429 rests, while m-small keeps using every key, until the rest ends", async () => {
      const clock = new ManualClock();
      const upstream = perModelUpstream();
      upstream.limit(BIG, "a");
      await using gw = await backend.start(upstream.handler, clock);
      const client = openai(gw.url);
      const big = () => askOpenAI(client, BIG);

      await askUntilTried(gw, big, "a", BIG);
      expect(await served(big, 6)).not.toContain("a");
      expect(callsOf(gw.fake.calls, "a", BIG)).toBe(1);
      expect(new Set(await served(() => askOpenAI(client, SMALL), 6))).toEqual(new Set(["a", "b", "c"]));

      // The 429 asked for 60 s: the pair is back after them, and so is the key for m-big.
      upstream.lift(BIG, "a");
      clock.advance(60_000);
      await askUntilTried(gw, big, "a", BIG, 2);
    });

    it("never tries a key without m-big for it again until the denial's rest ends, and the client never sees the 404", async () => {
      const clock = new ManualClock();
      const upstream = perModelUpstream({ lacks: { [BIG]: ["b"] } });
      await using gw = await backend.start(upstream.handler, clock);
      const client = openai(gw.url);
      const big = () => askOpenAI(client, BIG);

      await askUntilTried(gw, big, "b", BIG);
      const keys = await served(big, 6);
      expect([keys.includes("b"), callsOf(gw.fake.calls, "b", BIG)]).toEqual([false, 1]);
      // Denied one model, not quarantined: the key serves its others.
      expect(new Set(await served(() => askOpenAI(client, SMALL), 6))).toEqual(new Set(["a", "b", "c"]));
      expect((await gw.key("b")).state).not.toBe("quarantined");

      // The denial rests 6 hours (model_access.rest_sec's default); then the key is asked again, still unseen by the client.
      clock.advance(6 * HOUR - 1);
      await served(big, 6);
      expect(callsOf(gw.fake.calls, "b", BIG)).toBe(1);
      clock.advance(1);
      await askUntilTried(gw, big, "b", BIG, 2);
    });
  });

  describe(`gateway with model-aware keys (Anthropic SDK, ${backend.name})`, () => {
    it("keeps m-big off a rate-limited key and a key without it, while m-small uses all three", async () => {
      const clock = new ManualClock();
      const upstream = perModelUpstream({ lacks: { [BIG]: ["b"] } });
      upstream.limit(BIG, "a");
      await using gw = await backend.start(upstream.handler, clock, ANTHROPIC_UPSTREAM);
      const client = anthropic(gw.url);
      const big = () => askAnthropic(client, BIG);

      await askUntilTried(gw, big, "a", BIG);
      await askUntilTried(gw, big, "b", BIG);
      expect(await served(big, 6)).toEqual(Array(6).fill("c"));
      expect([callsOf(gw.fake.calls, "a", BIG), callsOf(gw.fake.calls, "b", BIG)]).toEqual([1, 1]);
      expect(new Set(await served(() => askAnthropic(client, SMALL), 6))).toEqual(new Set(["a", "b", "c"]));
    });
  });
}

describe("gateway with model-aware keys: edges", () => {
  it("answers the upstream's 404 once every key lacks the model, and no key is tried for it after", async () => {
    const upstream = perModelUpstream({ lacks: { [BIG]: ["a", "b", "c"] } });
    await using gw = await startGateway({ handler: upstream.handler, daemon: { clock: new ManualClock() } });
    const client = openai(gw.url);
    const first = await client.chat.completions
      .create({ model: BIG, messages: [{ role: "user", content: "hi" }] })
      .withResponse()
      .then(
        () => undefined,
        (error: InstanceType<typeof OpenAI.APIError>) => error,
      );
    expect([first?.status, first?.code, first?.headers?.get("x-keypool-attempts")]).toEqual([
      404,
      "model_not_found",
      "3",
    ]);
    expect(gw.fake.calls).toHaveLength(3);

    const again = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({ model: BIG, messages: [] }),
    });
    expect([again.status, ((await again.json()) as { error: { code: string } }).error.code]).toEqual([
      503,
      "no_key_available",
    ]);
    expect(gw.fake.calls).toHaveLength(3);
    expect((await served(() => askOpenAI(client, SMALL), 1)).length).toBe(1);
  });

  it("asks a fallback pool for its model_map name: a key it lacks that name on is skipped for it", async () => {
    const clock = new ManualClock();
    const openaiSide = perModelUpstream();
    for (const key of ["a", "b", "c"]) openaiSide.limit(BIG, key);
    const claudeSide = perModelUpstream({ lacks: { "sim-claude": ["a"] } });
    await using claude = await startFakeUpstream(claudeSide.handler);
    await using gw = await startGateway({
      handler: openaiSide.handler,
      daemon: { clock, random: () => 0 },
      config: (fakeUrl) => ({
        state_file: "state.db",
        server: { addr: "127.0.0.1:0" },
        cooldown_sec: 0,
        pools: {
          openai: {
            tokens_file: "tokens.txt",
            fallback: ["claude"],
            upstream: { listen: "127.0.0.1:0", base_url: fakeUrl, cooldown_sec: 0, max_retries: 5 },
          },
          claude: {
            tokens_file: "tokens.txt",
            model_map: { [BIG]: "sim-claude" },
            upstream: { listen: "127.0.0.1:0", base_url: claude.url, cooldown_sec: 0 },
          },
        },
      }),
    });
    const client = openai(`${gw.url}/openai`);
    const big = () => askOpenAI(client, BIG);
    for (let i = 0; i < 6 && callsOf(claude.calls, "a", "sim-claude") === 0; i++) await served(big, 1);
    expect(callsOf(claude.calls, "a", "sim-claude")).toBe(1);
    await served(big, 6);
    expect(callsOf(claude.calls, "a", "sim-claude")).toBe(1);
    // openai's keys rested m-big only once each: their pairs keep them out, not the key.
    expect(gw.fake.calls).toHaveLength(3);
  });

  it("reads a Gemini request's model from its path: a key without it is skipped, and still serves others", async () => {
    const clock = new ManualClock();
    const upstream = perModelUpstream({ lacks: { [BIG]: ["b"] } });
    upstream.limit(SMALL, "a");
    await using gw = await startGateway({
      handler: upstream.handler,
      upstream: { auth_query: "key" },
      daemon: { clock, random: () => 0 },
    });
    const ask = async (model: string): Promise<Served> => {
      const response = await fetch(`${gw.url}/v1beta/models/${model}:generateContent`, {
        method: "POST",
        body: JSON.stringify({ contents: [{ parts: [{ text: "hi" }] }] }),
      });
      const body = (await response.json()) as { candidates?: Array<{ content: { parts: Array<{ text: string }> } }> };
      return {
        text: body.candidates?.[0]?.content.parts[0]?.text,
        key: response.headers.get("x-keypool-key")!,
        attempts: response.headers.get("x-keypool-attempts")!,
      };
    };
    await askUntilTried(gw, () => ask(BIG), "b", BIG);
    await askUntilTried(gw, () => ask(SMALL), "a", SMALL);
    expect(await served(() => ask(BIG), 4)).not.toContain("b");
    expect(await served(() => ask(SMALL), 4)).not.toContain("a");
    expect([callsOf(gw.fake.calls, "b", BIG), callsOf(gw.fake.calls, "a", SMALL)]).toEqual([1, 1]);
    // b lacks m-big and a rests for m-small, yet each serves the other model.
    expect(await served(() => ask(BIG), 4)).toContain("a");
    expect(await served(() => ask(SMALL), 4)).toContain("b");
  });

  it("never shows a key that a denial quotes back, to the client or in the log", async () => {
    const leaks = [canary("denial-a"), canary("denial-b")];
    const tokens = Object.fromEntries(leaks.map((c) => [c.id, c.token]));
    // Every key lacks the model, and the answer quotes the key it was sent with.
    const quoting: FakeHandler = (_, call) =>
      Response.json(
        {
          error: {
            code: "model_not_found",
            message: `The model m-big does not exist for ${call.headers.authorization}`,
          },
        },
        { status: 404 },
      );
    await using gw = await startGateway({ handler: quoting, tokens, daemon: { clock: new ManualClock() } });
    const answers: string[] = [];
    for (let i = 0; i < 2; i++) {
      const response = await fetch(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        body: JSON.stringify({ model: BIG, messages: [] }),
      });
      answers.push(`${response.status} ${JSON.stringify([...response.headers])} ${await response.text()}`);
    }
    // The canaries did reach the upstream, and the first answer is the upstream's 404 after both keys.
    expect(leaks.every((c) => JSON.stringify(gw.fake.calls).includes(c.token))).toBe(true);
    expect(answers[0]).toStartWith("404 ");
    expect(leaksOf(leaks, [...answers, ...gw.kp.logs])).toEqual([]);
  });

  it("lets a request whose model no provider would name through, as one that names none", async () => {
    const absurd = "m".repeat(300);
    const upstream = perModelUpstream();
    upstream.limit(absurd, "a");
    await using gw = await startGateway({ handler: upstream.handler, daemon: { clock: new ManualClock() } });
    const client = openai(gw.url);
    await askUntilTried(gw, () => askOpenAI(client, absurd), "a", absurd);
    // Not a model, so no pair: the 429 rested the key itself.
    expect((await gw.key("a")).state).toBe("cooling");
  });
});
