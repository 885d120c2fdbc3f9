/**
 * A small OpenAI- and Anthropic-compatible API that answers from scripted keys, for `keypool demo`
 * and for tests. Each key behaves as told: answers, rate-limits, or is revoked.
 */

export type KeyBehaviour = "ok" | "rate_limited" | "revoked" | "server_error";

export interface SimulatedUpstreamOptions {
  /** token → how requests made with it are answered; unknown tokens get 401. */
  keys: Record<string, KeyBehaviour>;
  /** Seconds a rate-limited key asks the client to wait. */
  retryAfterSec?: number;
}

const WORDS = ["Keys", "rotate,", "requests", "flow,", "and", "nobody", "notices."];

/** The request handler; serve it with Bun.serve or call it directly. */
export function simulatedUpstream(options: SimulatedUpstreamOptions): (request: Request) => Promise<Response> {
  return async function answer(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const anthropic = url.pathname.startsWith("/v1/messages");
    const token = anthropic ? request.headers.get("x-api-key") : bearer(request.headers.get("authorization"));
    const behaviour = token ? options.keys[token] : undefined;
    if (behaviour === undefined || behaviour === "revoked")
      return apiError(401, "invalid_api_key", "Incorrect API key provided.", anthropic);
    if (behaviour === "rate_limited") {
      return apiError(429, "rate_limit_exceeded", "Rate limit reached for requests.", anthropic, {
        "retry-after": String(options.retryAfterSec ?? 60),
      });
    }
    if (behaviour === "server_error") return apiError(500, "server_error", "The server had an error.", anthropic);

    if (request.method === "GET" && url.pathname === "/v1/models") {
      return Response.json({
        object: "list",
        data: [{ id: "sim-1", object: "model", created: 0, owned_by: "keypool-demo" }],
      });
    }
    if (request.method !== "POST" || !(anthropic || url.pathname === "/v1/chat/completions")) {
      return apiError(404, "not_found", `no route ${request.method} ${url.pathname}`, anthropic);
    }
    const body = (await request.json().catch(() => ({}))) as { model?: string; stream?: boolean };
    const model = body.model ?? "sim-1";
    if (anthropic) return body.stream ? anthropicStream(model) : anthropicMessage(model);
    return body.stream ? openaiStream(model) : openaiCompletion(model);
  };
}

function bearer(header: string | null): string | undefined {
  return header?.toLowerCase().startsWith("bearer ") ? header.slice(7).trim() : undefined;
}

function apiError(
  status: number,
  code: string,
  message: string,
  anthropic: boolean,
  headers: Record<string, string> = {},
): Response {
  const body = anthropic
    ? {
        type: "error",
        error: {
          type: status === 429 ? "rate_limit_error" : status === 401 ? "authentication_error" : "api_error",
          message,
        },
      }
    : { error: { message, type: status === 429 ? "requests" : "invalid_request_error", code } };
  return Response.json(body, { status, headers });
}

const text = WORDS.join(" ");
const usage = { prompt_tokens: 12, completion_tokens: WORDS.length, total_tokens: 12 + WORDS.length };

function openaiCompletion(model: string): Response {
  return Response.json({
    id: "chatcmpl-sim",
    object: "chat.completion",
    created: 0,
    model,
    choices: [{ index: 0, message: { role: "assistant", content: text }, finish_reason: "stop" }],
    usage,
  });
}

function openaiStream(model: string): Response {
  const chunk = (delta: object, finish: string | null) => ({
    id: "chatcmpl-sim",
    object: "chat.completion.chunk",
    created: 0,
    model,
    choices: [{ index: 0, delta, finish_reason: finish }],
  });
  const events = [
    chunk({ role: "assistant", content: "" }, null),
    ...WORDS.map((w, i) => chunk({ content: i === 0 ? w : ` ${w}` }, null)),
    { ...chunk({}, "stop"), usage },
  ];
  return sse(events.map((e) => `data: ${JSON.stringify(e)}\n\n`).concat("data: [DONE]\n\n"));
}

function anthropicMessage(model: string): Response {
  return Response.json({
    id: "msg_sim",
    type: "message",
    role: "assistant",
    model,
    content: [{ type: "text", text }],
    stop_reason: "end_turn",
    stop_sequence: null,
    usage: { input_tokens: 12, output_tokens: WORDS.length },
  });
}

function anthropicStream(model: string): Response {
  const event = (type: string, data: object) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  return sse([
    event("message_start", {
      message: {
        id: "msg_sim",
        type: "message",
        role: "assistant",
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: 12, output_tokens: 0 },
      },
    }),
    event("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
    ...WORDS.map((w, i) =>
      event("content_block_delta", { index: 0, delta: { type: "text_delta", text: i === 0 ? w : ` ${w}` } }),
    ),
    event("content_block_stop", { index: 0 }),
    event("message_delta", {
      delta: { stop_reason: "end_turn", stop_sequence: null },
      usage: { output_tokens: WORDS.length },
    }),
    event("message_stop", {}),
  ]);
}

function sse(frames: string[]): Response {
  const encoder = new TextEncoder();
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const frame of frames) controller.enqueue(encoder.encode(frame));
      controller.close();
    },
  });
  return new Response(stream, { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } });
}

/** The full text every successful answer carries, for callers that check it arrived whole. */
export const SIMULATED_TEXT = text;
