import { describe, expect, it } from "bun:test";
import OpenAI from "openai";
import { keyOfCall, startGateway } from "./helpers/gateway-harness";
import { OPENAI_DONE, controlledStream, openaiChunks, readFirstChunk } from "./helpers/gateway-streams";

const openai = (url: string) => new OpenAI({ apiKey: "unused", baseURL: `${url}/v1`, maxRetries: 0 });
const streamRequest = { model: "m", messages: [{ role: "user" as const, content: "hi" }], stream: true as const };

describe("gateway streaming", () => {
  it("passes each SSE event on as it arrives, before the upstream has finished", async () => {
    const upstream = controlledStream(openaiChunks(["Hel"]), [...openaiChunks(["lo"]), ...OPENAI_DONE]);
    await using gw = await startGateway({ handler: (req) => upstream.respond(req) });
    const stream = await openai(gw.url).chat.completions.create(streamRequest);
    const iterator = stream[Symbol.asyncIterator]();
    // The upstream is still holding back the rest: this chunk cannot have been buffered behind it.
    expect((await iterator.next()).value?.choices[0]?.delta.content).toBe("Hel");
    upstream.finish();
    const rest: string[] = [];
    for (let next = await iterator.next(); !next.done; next = await iterator.next())
      rest.push(next.value.choices[0]?.delta.content ?? "");
    expect(rest.join("")).toBe("lo");
  });

  it("aborts the upstream request promptly and releases the lease when the client goes away", async () => {
    const upstream = controlledStream(openaiChunks(["first"]));
    await using gw = await startGateway({ handler: (req) => upstream.respond(req) });
    const client = new AbortController();
    const stream = await openai(gw.url).chat.completions.create(streamRequest, { signal: client.signal });
    const iterator = stream[Symbol.asyncIterator]();
    expect((await iterator.next()).value?.choices[0]?.delta.content).toBe("first");
    const key = keyOfCall(gw.fake.calls[0]!)!;
    expect((await gw.key(key)).in_flight).toBe(1);

    const abortedAt = performance.now();
    client.abort();
    const latencyMs = (await upstream.closed) - abortedAt;
    console.log(`client abort → upstream closed: ${latencyMs.toFixed(1)} ms`);
    expect(latencyMs).toBeLessThan(1000);
    expect(await gw.key(key)).toMatchObject({ in_flight: 0, errors: 0 });
  });

  it("aborts the upstream when a raw fetch client disconnects while the upstream is silent", async () => {
    const upstream = controlledStream(["data: one\n\n"]);
    await using gw = await startGateway({ handler: (req) => upstream.respond(req) });
    const client = new AbortController();
    const response = await fetch(`${gw.url}/v1/stream`, { signal: client.signal });
    const { text } = await readFirstChunk(response.body!);
    expect(text).toBe("data: one\n\n");

    const abortedAt = performance.now();
    client.abort();
    const latencyMs = (await upstream.closed) - abortedAt;
    console.log(`raw fetch abort → upstream closed: ${latencyMs.toFixed(1)} ms`);
    expect(latencyMs).toBeLessThan(1000);
    expect((await gw.keys())[keyOfCall(gw.fake.calls[0]!)!]!.in_flight).toBe(0);
  });

  it("aborts the upstream, without retrying or blaming the key, when the client leaves before the answer", async () => {
    const gone = Promise.withResolvers<void>();
    await using gw = await startGateway({
      handler: (req) => {
        req.signal.addEventListener("abort", () => gone.resolve(), { once: true });
        return new Promise<Response>(() => {});
      },
    });
    const client = new AbortController();
    const pending = fetch(`${gw.url}/v1/chat/completions`, { method: "POST", body: "{}", signal: client.signal }).catch(
      (e: Error) => e.name,
    );
    await gw.fake.wait(1);
    client.abort();
    await gone.promise;
    expect(await pending).toBe("AbortError");
    const key = keyOfCall(gw.fake.calls[0]!)!;
    expect(await gw.key(key)).toMatchObject({ in_flight: 0, errors: 0 });
    expect(gw.fake.calls.length).toBe(1);
  });

  it("keeps a stream open through an idle period longer than timeout_sec", async () => {
    const upstream = controlledStream(openaiChunks(["before"]), [...openaiChunks([" after"]), ...OPENAI_DONE]);
    await using gw = await startGateway({ handler: (req) => upstream.respond(req), upstream: { timeout_sec: 1 } });
    const stream = await openai(gw.url).chat.completions.create(streamRequest);
    const parts: string[] = [];
    const done = (async () => {
      for await (const chunk of stream) parts.push(chunk.choices[0]?.delta.content ?? "");
    })();
    await upstream.firstSent;
    // The one real wait: timeout_sec bounds the time to first byte, so 1.5 s of silence after it must not cut the stream.
    await Bun.sleep(1500);
    upstream.finish();
    await done;
    expect(parts.join("")).toBe("before after");
    expect(gw.fake.calls.length).toBe(1);
  });

  it("never retries once the response has started: an upstream that breaks mid-stream ends the client's stream", async () => {
    const upstream = controlledStream(openaiChunks(["partial"]));
    await using gw = await startGateway({ handler: (req) => upstream.respond(req) });
    const response = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify(streamRequest),
    });
    expect(response.status).toBe(200);
    const { text, reader } = await readFirstChunk(response.body!);
    expect(text).toContain("partial");

    upstream.fail();
    const ending = await (async () => {
      for (;;) {
        const next = await reader.read();
        if (next.done) return "ended";
      }
    })().catch(() => "errored");
    // The stream must not end as if it were complete: the client sees the cut.
    expect(ending).toBe("errored");
    expect(gw.fake.calls.length).toBe(1);
    expect(await gw.key(keyOfCall(gw.fake.calls[0]!)!)).toMatchObject({ errors: 1, in_flight: 0 });
    expect(gw.kp.logs.filter((line) => line.includes("upstream broke off a response mid-stream"))).toHaveLength(1);
  });
});
