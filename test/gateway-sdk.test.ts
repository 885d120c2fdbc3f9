import Anthropic from "@anthropic-ai/sdk";
import { describe, expect, it } from "bun:test";
import OpenAI from "openai";
import { SIMULATED_TEXT } from "../src/demo/simulated-upstream";
import { type GatewayUnderTest, TOKENS, simulated, startGateway } from "./helpers/gateway-harness";

// The real SDKs, with no key of their own: the gateway injects one. SDK retries are off so every
// retry the fake sees is the gateway's.
const allOk = () => simulated();
const openai = (url: string) => new OpenAI({ apiKey: "unused", baseURL: `${url}/v1`, maxRetries: 0 });
const anthropic = (url: string) => new Anthropic({ apiKey: "unused", baseURL: url, maxRetries: 0 });
/** Leases still out across the pool: a stream read to its end has given its key back. */
const leasesHeld = async (gw: GatewayUnderTest) =>
  Object.values(await gw.keys()).reduce((sum, k) => sum + k.in_flight, 0);
const ANTHROPIC_UPSTREAM = { auth_header: "x-api-key", auth_template: "{token}" };

describe("gateway with the OpenAI SDK", () => {
  it("answers a chat completion with a pooled key", async () => {
    await using gw = await startGateway({ handler: allOk() });
    const { data, response } = await openai(gw.url)
      .chat.completions.create({ model: "sim-1", messages: [{ role: "user", content: "hi" }] })
      .withResponse();
    expect(data.choices[0]!.message.content).toBe(SIMULATED_TEXT);
    expect([response.status, response.headers.get("x-keypool-attempts")]).toEqual([200, "1"]);
    expect(Object.keys(TOKENS)).toContain(response.headers.get("x-keypool-key")!);
    expect(gw.fake.calls.map((c) => [c.method, c.path])).toEqual([["POST", "/v1/chat/completions"]]);
  });

  it("streams the completion complete and in order", async () => {
    await using gw = await startGateway({ handler: allOk() });
    const stream = await openai(gw.url).chat.completions.create({
      model: "sim-1",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
    });
    const parts: string[] = [];
    for await (const chunk of stream) parts.push(chunk.choices[0]?.delta.content ?? "");
    expect(parts.join("")).toBe(SIMULATED_TEXT);
    expect(parts.filter(Boolean).length).toBe(SIMULATED_TEXT.split(" ").length);
    expect(await leasesHeld(gw)).toBe(0);
  });
});

describe("gateway with the Anthropic SDK", () => {
  it("answers messages.create with the key in x-api-key", async () => {
    await using gw = await startGateway({ handler: allOk(), upstream: ANTHROPIC_UPSTREAM });
    const message = await anthropic(gw.url).messages.create({
      model: "sim-1",
      max_tokens: 64,
      messages: [{ role: "user", content: "hi" }],
    });
    expect(message.content.map((block) => (block.type === "text" ? block.text : block.type))).toEqual([SIMULATED_TEXT]);
    expect(Object.values(TOKENS)).toContain(gw.fake.calls[0]!.headers["x-api-key"]!);
    expect(gw.fake.calls[0]!.headers.authorization).toBeUndefined();
  });

  it("streams with messages.stream, text complete and in order", async () => {
    await using gw = await startGateway({ handler: allOk(), upstream: ANTHROPIC_UPSTREAM });
    const stream = anthropic(gw.url).messages.stream({
      model: "sim-1",
      max_tokens: 64,
      messages: [{ role: "user", content: "hi" }],
    });
    const deltas: string[] = [];
    stream.on("text", (delta) => deltas.push(delta));
    const final = await stream.finalMessage();
    expect(deltas.join("")).toBe(SIMULATED_TEXT);
    expect(final.content.map((block) => (block.type === "text" ? block.text : block.type))).toEqual([SIMULATED_TEXT]);
  });

  it("streams with stream: true as raw events", async () => {
    await using gw = await startGateway({ handler: allOk(), upstream: ANTHROPIC_UPSTREAM });
    const events = await anthropic(gw.url).messages.create({
      model: "sim-1",
      max_tokens: 64,
      messages: [{ role: "user", content: "hi" }],
      stream: true,
    });
    let text = "";
    const types: string[] = [];
    for await (const event of events) {
      types.push(event.type);
      if (event.type === "content_block_delta" && event.delta.type === "text_delta") text += event.delta.text;
    }
    expect(text).toBe(SIMULATED_TEXT);
    expect([types[0], types.at(-1)]).toEqual(["message_start", "message_stop"]);
    expect(await leasesHeld(gw)).toBe(0);
  });
});
