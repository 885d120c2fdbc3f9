import Anthropic from "@anthropic-ai/sdk";
import { describe, expect, it } from "bun:test";
import OpenAI from "openai";
import { SIMULATED_TEXT } from "../src/demo/simulated-upstream";
import { ManualClock } from "../src/pool/clock";
import { startFakeUpstream } from "./helpers/fake-upstream";
import { TOKENS, keyOfCall, simulated, startGateway } from "./helpers/gateway-harness";

// The real SDKs, retries off, so every retry the fake sees is the gateway's.
const openai = (url: string, options: { defaultHeaders?: Record<string, string> } = {}) =>
  new OpenAI({ apiKey: "unused", baseURL: `${url}/v1`, maxRetries: 0, ...options });
const anthropic = (url: string) => new Anthropic({ apiKey: "unused", baseURL: url, maxRetries: 0 });

type Message = { role: "system" | "user" | "assistant"; content: string };

/** One turn of a conversation that grows like a real chat; the key the gateway used, and the attempts it took. */
async function turn(client: OpenAI, history: Message[], text: string, extra: { user?: string } = {}) {
  history.push({ role: "user", content: text });
  const { data, response } = await client.chat.completions
    .create({ model: "sim-1", messages: history, ...extra })
    .withResponse();
  history.push({ role: "assistant", content: data.choices[0]!.message.content ?? "" });
  return { key: response.headers.get("x-keypool-key")!, attempts: response.headers.get("x-keypool-attempts")! };
}

describe("sticky sessions through the gateway", () => {
  it("keeps a conversation on one key for 50 turns while other requests rotate", async () => {
    await using gw = await startGateway({ handler: simulated() });
    const client = openai(gw.url);
    const history: Message[] = [{ role: "system", content: "You are the billing assistant. Answer in one sentence." }];
    const sticky: string[] = [];
    const plain: string[] = [];
    for (let i = 0; i < 50; i++) {
      sticky.push((await turn(client, history, `question ${i}`)).key);
      // No system prompt, no session id: rotation as usual.
      plain.push((await turn(client, [], `one-off ${i}`)).key);
    }
    expect(new Set(sticky).size).toBe(1);
    expect(new Set(plain).size).toBeGreaterThan(1);
    expect((await gw.key(sticky[0]!)).sessions).toBe(1);
  });

  it("moves a conversation off its key when the key is rate-limited, and back once the rest is over", async () => {
    const clock = new ManualClock();
    await using gw = await startGateway({ handler: simulated(), daemon: { clock, random: () => 0 } });
    const client = openai(gw.url);
    const history: Message[] = [];
    const session = { user: "customer-7" };
    const own = (await turn(client, history, "hello", session)).key;
    for (let i = 0; i < 9; i++) expect((await turn(client, history, `before ${i}`, session)).key).toBe(own);

    // The own key answers 429 once: the gateway retries on another key, and the conversation stays there.
    gw.fake.setHandler(simulated({ a: "ok", b: "ok", c: "ok", [own]: "rate_limited" }));
    const limited = await turn(client, history, "now limited", session);
    expect([limited.attempts, limited.key === own]).toEqual(["2", false]);
    gw.fake.setHandler(simulated());
    const detour: string[] = [];
    for (let i = 0; i < 10; i++) detour.push((await turn(client, history, `during ${i}`, session)).key);
    expect(detour).toEqual(Array(10).fill(limited.key));

    // The 429 asked for 60 s (Retry-After): once they pass, the conversation is back on its key.
    clock.advance(61_000);
    const after: string[] = [];
    for (let i = 0; i < 10; i++) after.push((await turn(client, history, `after ${i}`, session)).key);
    expect(after).toEqual(Array(10).fill(own));
    expect(gw.fake.calls.filter((c) => keyOfCall(c) === own)).toHaveLength(1 + 9 + 1 + 10);
  });

  it("reads the session from the x-session-id header", async () => {
    await using gw = await startGateway({ handler: simulated() });
    const keysOf = async (session: string) => {
      const client = openai(gw.url, { defaultHeaders: { "x-session-id": session } });
      const keys: string[] = [];
      for (let i = 0; i < 6; i++) keys.push((await turn(client, [], `hi ${i}`)).key);
      return new Set(keys);
    };
    const [one, two] = [await keysOf("conv-1"), await keysOf("conv-2")];
    expect([one.size, two.size]).toEqual([1, 1]);
  });

  it("keeps an Anthropic conversation with the same system prompt on one key", async () => {
    await using gw = await startGateway({
      handler: simulated(),
      upstream: { auth_header: "x-api-key", auth_template: "{token}" },
    });
    const client = anthropic(gw.url);
    const keys = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const { response } = await client.messages
        .create({
          model: "sim-1",
          max_tokens: 64,
          system: [{ type: "text", text: "You review pull requests." }],
          messages: [{ role: "user", content: `diff ${i}` }],
        })
        .withResponse();
      keys.add(response.headers.get("x-keypool-key")!);
    }
    expect(keys.size).toBe(1);
  });
});

describe("gateway fallback pools", () => {
  it("forwards to the fallback pool's upstream with the model renamed once the pool's keys are rate-limited", async () => {
    await using claude = await startFakeUpstream(simulated());
    await using gw = await startGateway({
      handler: simulated({ a: "rate_limited", b: "rate_limited", c: "rate_limited" }),
      config: (fakeUrl) => ({
        state_file: "state.db",
        server: { addr: "127.0.0.1:0" },
        cooldown_sec: 0,
        pools: {
          openai: {
            tokens_file: "tokens.txt",
            fallback: ["claude"],
            upstream: { listen: "127.0.0.1:0", base_url: fakeUrl, cooldown_sec: 0, max_retries: 3 },
          },
          claude: {
            tokens_file: "tokens.txt",
            model_map: { "gpt-4o": "sim-claude" },
            upstream: { listen: "127.0.0.1:0", base_url: claude.url },
          },
        },
      }),
    });
    const client = openai(`${gw.url}/openai`);
    const ask = () =>
      client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] }).withResponse();

    // Each of openai's keys answers 429, and a fourth attempt finds none left: the claude pool serves.
    const first = await ask();
    expect([
      first.data.choices[0]!.message.content,
      first.response.headers.get("x-keypool-pool"),
      first.response.headers.get("x-keypool-attempts"),
    ]).toEqual([SIMULATED_TEXT, "claude", "4"]);
    expect(gw.fake.calls).toHaveLength(3);
    expect(claude.calls.map((c) => [c.path, JSON.parse(c.body).model])).toEqual([
      ["/v1/chat/completions", "sim-claude"],
    ]);

    // openai's keys now rest: the next request goes straight to the fallback.
    const second = await ask();
    expect([
      second.response.headers.get("x-keypool-pool"),
      second.response.headers.get("x-keypool-attempts"),
      gw.fake.calls.length,
    ]).toEqual(["claude", "1", 3]);
  });
});

describe("gateway upstream.queue_timeout_sec", () => {
  it("holds a request until a key frees up instead of answering 503", async () => {
    let answerFirst!: () => void;
    const firstAnswered = new Promise<void>((resolve) => (answerFirst = resolve));
    const ok = simulated({ a: "ok" });
    await using gw = await startGateway({
      tokens: { a: TOKENS.a },
      // The first request is held upstream, so the pool's one key stays busy until the test lets go.
      handler: async (req, call) => {
        if (call.body.includes('"first"')) await firstAnswered;
        return ok(req, call);
      },
      config: (fakeUrl) => ({
        tokens_file: "tokens.txt",
        state_file: "state.db",
        cooldown_sec: 0,
        max_concurrency: 1,
        server: { addr: "127.0.0.1:0" },
        upstream: { listen: "127.0.0.1:0", base_url: fakeUrl, queue_timeout_sec: 30 },
      }),
    });
    const client = openai(gw.url);
    const ask = (content: string) =>
      client.chat.completions.create({ model: "sim-1", messages: [{ role: "user", content }] });
    const first = ask("first");
    await gw.fake.wait(1);
    const second = ask("second");
    await gw.kp.daemon.keys.whenWaiting("default", 1);
    expect(gw.fake.calls).toHaveLength(1);
    answerFirst();
    const answers = await Promise.all([first, second]);
    expect(answers.map((a) => a.choices[0]!.message.content)).toEqual([SIMULATED_TEXT, SIMULATED_TEXT]);
    expect(gw.fake.calls.map((c) => JSON.parse(c.body).messages[0].content)).toEqual(["first", "second"]);
  });

  it("answers 503 without waiting when queue_timeout_sec is unset", async () => {
    await using gw = await startGateway({
      tokens: { a: TOKENS.a },
      handler: simulated({ a: "rate_limited" }),
    });
    const limited = await openai(gw.url)
      .chat.completions.create({ model: "sim-1", messages: [{ role: "user", content: "x" }] })
      .catch((e: { status: number }) => e.status);
    const resting = await openai(gw.url)
      .chat.completions.create({ model: "sim-1", messages: [{ role: "user", content: "x" }] })
      .catch((e: { status: number }) => e.status);
    expect([limited, resting]).toEqual([429, 503]);
  });
});
