import { describe, expect, it } from "bun:test";
import { createUsageMeter } from "../../src/metrics/usage-meter";

const bytes = (text: string) => new TextEncoder().encode(text);

/** Feeds `text` in chunks of `size` bytes, so values and lines are split across chunks. */
function meter(contentType: string, text: string, size = 7) {
  const m = createUsageMeter(contentType)!;
  const all = bytes(text);
  for (let i = 0; i < all.length; i += size) m.push(all.slice(i, i + size));
  return m.finish();
}

describe("createUsageMeter", () => {
  it("reads OpenAI chat usage from a JSON body", () => {
    expect(
      meter("application/json", '{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}'),
    ).toEqual({ input: 12, output: 5 });
  });

  it("reads usage with nested details from an Anthropic JSON body", () => {
    const body =
      '{"id":"msg","content":[{"type":"text","text":"{not usage}"}],"usage":{"input_tokens":30,"cache_creation":{"ephemeral_5m_input_tokens":0},"output_tokens":8}}';
    expect(meter("application/json", body)).toEqual({ input: 30, output: 8 });
  });

  it("reads Anthropic usage from a streamed message: input at the start, the output total in the last delta", () => {
    const events = [
      'event: message_start\ndata: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":25,"output_tokens":1}}}\n\n',
      'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"hi"}}\n\n',
      'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":15}}\n\n',
      "event: message_stop\ndata: {}\n\n",
    ].join("");
    expect(meter("text/event-stream; charset=utf-8", events)).toEqual({ input: 25, output: 15 });
  });

  it("reads the Responses API's completed event", () => {
    const event = 'data: {"type":"response.completed","response":{"usage":{"input_tokens":9,"output_tokens":4}}}\n\n';
    expect(meter("text/event-stream", event, 3)).toEqual({ input: 9, output: 4 });
  });

  it("reads OpenAI's cached prompt tokens, which are a part of prompt_tokens, from chat and Responses API usage", () => {
    const chat =
      '{"usage":{"prompt_tokens":2006,"completion_tokens":300,"prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0}}}';
    expect(meter("application/json", chat)).toEqual({ input: 2006, output: 300, cached: 1920 });
    const streamed =
      'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: {"choices":[],"usage":{"prompt_tokens":2006,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":1920}}}\n\ndata: [DONE]\n\n';
    expect(meter("text/event-stream", streamed, 5)).toEqual({ input: 2006, output: 3, cached: 1920 });
    const responses =
      'data: {"type":"response.completed","response":{"usage":{"input_tokens":900,"input_tokens_details":{"cached_tokens":512},"output_tokens":4}}}\n\n';
    expect(meter("text/event-stream", responses)).toEqual({ input: 900, output: 4, cached: 512 });
  });

  it("adds Anthropic's cache reads and writes, which come apart from input_tokens, into input", () => {
    const body =
      '{"usage":{"input_tokens":50,"cache_creation_input_tokens":248,"cache_read_input_tokens":1800,"cache_creation":{"ephemeral_5m_input_tokens":248},"output_tokens":12}}';
    expect(meter("application/json", body)).toEqual({ input: 2098, output: 12, cached: 1800, cacheWrite: 248 });
  });

  it("reads Anthropic's cache figures from message_start, and from a message_delta that repeats them", () => {
    const events = [
      'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":4000,"output_tokens":1}}}\n\n',
      'event: message_delta\ndata: {"type":"message_delta","usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":4000,"output_tokens":15}}\n\n',
    ].join("");
    expect(meter("text/event-stream", events)).toEqual({ input: 4025, output: 15, cached: 4000, cacheWrite: 0 });
  });

  it("reads a stream's usage whether its chunks are whole events or cut anywhere, across multibyte text", () => {
    const events = [
      'data: {"choices":[{"delta":{"content":"héllo wörld ✓"}}]}\n\n',
      'data: {"choices":[{"delta":{"content":"✓✓"}}]}\n\n',
      'data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":7}}\n\n',
      "data: [DONE]\n\n",
    ];
    const whole = createUsageMeter("text/event-stream")!;
    for (const event of events) whole.push(bytes(event));
    expect(whole.finish()).toEqual({ input: 9, output: 7 });
    // Every cut point of the text, so a chunk ends mid-line, mid-character and mid-"usage".
    for (const size of [1, 2, 3, 5, 11, 40])
      expect(meter("text/event-stream", events.join(""), size)).toEqual({ input: 9, output: 7 });
    // Whole events first, then one cut short: what was held back must still be read.
    const mixed = createUsageMeter("text/event-stream")!;
    const usageEvent = bytes(events[2]!);
    mixed.push(bytes(events[0]!));
    mixed.push(usageEvent.slice(0, 40));
    mixed.push(usageEvent.slice(40));
    expect(mixed.finish()).toEqual({ input: 9, output: 7 });
    // A stream whose last event has no line end: it is read when the stream ends.
    const unterminated = createUsageMeter("text/event-stream")!;
    unterminated.push(bytes(events[0]!));
    unterminated.push(bytes(events[2]!.trimEnd()));
    expect(unterminated.finish()).toEqual({ input: 9, output: 7 });
  });

  it("reports nothing for bodies without usage, and ignores other content types", () => {
    expect(meter("application/json", '{"data":[{"id":"gpt"}]}')).toBeUndefined();
    expect(meter("text/event-stream", "data: [DONE]\n\n")).toBeUndefined();
    expect(createUsageMeter("text/plain")).toBeUndefined();
  });
});
