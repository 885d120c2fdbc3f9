import type { FakeHandler } from "./fake-upstream";

/** Tokens every answer of `usageUpstream` reports: 300 in, 200 out. At $1 per million each, $0.0005 a request. */
export const REPORTED = { input: 300, output: 200 };

/** `prices:` that make each answer of `usageUpstream` cost $0.0005 (model "m"). */
export const PRICES = { m: { input_per_mtok: 1, output_per_mtok: 1 } };

const encoder = new TextEncoder();

function eventStream(events: Array<{ event?: string; data: unknown }>): Response {
  const text = events
    .map(
      ({ event, data }) =>
        `${event ? `event: ${event}\n` : ""}data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`,
    )
    .join("");
  // One event per chunk, so the gateway's meter reads a real stream.
  const chunks = text.split(/(?<=\n\n)/);
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
      controller.close();
    },
  });
  return new Response(body, { headers: { "content-type": "text/event-stream" } });
}

/**
 * OpenAI chat completions and Anthropic messages, JSON or streamed, each reporting REPORTED as its
 * `usage` in the provider's own shape (OpenAI: on the last chunk; Anthropic: split between
 * message_start and message_delta).
 */
export const usageUpstream: FakeHandler = (_req, call) => {
  const body = JSON.parse(call.body || "{}") as { model?: string; stream?: boolean };
  const model = body.model ?? "m";
  if (call.path.endsWith("/chat/completions")) {
    const usage = {
      prompt_tokens: REPORTED.input,
      completion_tokens: REPORTED.output,
      total_tokens: REPORTED.input + REPORTED.output,
    };
    const message = { role: "assistant", content: "hi" };
    if (!body.stream)
      return Response.json({
        id: "c",
        object: "chat.completion",
        created: 0,
        model,
        choices: [{ index: 0, message, finish_reason: "stop" }],
        usage,
      });
    const chunk = { id: "c", object: "chat.completion.chunk", created: 0, model };
    return eventStream([
      { data: { ...chunk, choices: [{ index: 0, delta: { content: "hi" }, finish_reason: "stop" }] } },
      { data: { ...chunk, choices: [], usage } },
      { data: "[DONE]" },
    ]);
  }
  const message = { id: "msg", type: "message", role: "assistant", model, stop_reason: "end_turn" };
  if (!body.stream)
    return Response.json({
      ...message,
      content: [{ type: "text", text: "hi" }],
      usage: { input_tokens: REPORTED.input, output_tokens: REPORTED.output },
    });
  return eventStream([
    {
      event: "message_start",
      data: {
        type: "message_start",
        message: {
          ...message,
          content: [],
          stop_reason: null,
          usage: { input_tokens: REPORTED.input, output_tokens: 1 },
        },
      },
    },
    {
      event: "content_block_start",
      data: { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } },
    },
    {
      event: "content_block_delta",
      data: { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "hi" } },
    },
    { event: "content_block_stop", data: { type: "content_block_stop", index: 0 } },
    {
      event: "message_delta",
      data: { type: "message_delta", delta: { stop_reason: "end_turn" }, usage: { output_tokens: REPORTED.output } },
    },
    { event: "message_stop", data: { type: "message_stop" } },
  ]);
};
