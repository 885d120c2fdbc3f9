/**
 * Upstream SSE bodies a test drives step by step, so streaming tests wait on signals, never on time.
 *
 *   const stream = controlledStream([event1], [event2, "data: [DONE]\n\n"]);
 *   fake.setHandler((req) => stream.respond(req));
 *   … await stream.firstSent; … stream.finish();
 */
export interface ControlledStream {
  /** The upstream's answer: 200 text/event-stream that sends `first`, then waits for `finish()` or `fail()`. */
  respond(request: Request): Response;
  /** Resolves once `first` has been enqueued. */
  readonly firstSent: Promise<void>;
  /** Sends `rest` and ends the body normally. */
  finish(): void;
  /** Breaks the body mid-stream, as a reset connection would. */
  fail(): void;
  /** Resolves with `performance.now()` when the reader (the gateway) went away before the end. */
  readonly closed: Promise<number>;
}

export function controlledStream(first: string[], rest: string[] = []): ControlledStream {
  const encoder = new TextEncoder();
  const firstSent = Promise.withResolvers<void>();
  const next = Promise.withResolvers<"finish" | "fail">();
  const closed = Promise.withResolvers<number>();
  const onClosed = () => closed.resolve(performance.now());
  return {
    respond(request) {
      // Either may come first: the request's abort or the body's cancel.
      request.signal.addEventListener("abort", onClosed, { once: true });
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          for (const frame of first) controller.enqueue(encoder.encode(frame));
          firstSent.resolve();
          const how = await next.promise;
          if (how === "fail") {
            // No reason: Bun would print one; the gateway sees a reset connection either way.
            controller.error();
            return;
          }
          for (const frame of rest) controller.enqueue(encoder.encode(frame));
          controller.close();
        },
        cancel: onClosed,
      });
      return new Response(body, { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } });
    },
    firstSent: firstSent.promise,
    finish: () => next.resolve("finish"),
    fail: () => next.resolve("fail"),
    closed: closed.promise,
  };
}

/** `data: {…}\n\n` frames of an OpenAI chat completion stream that spells out `words`. */
export function openaiChunks(words: string[]): string[] {
  const chunk = (delta: object, finish: string | null) =>
    `data: ${JSON.stringify({ id: "chatcmpl-t", object: "chat.completion.chunk", created: 0, model: "m", choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  return words.map((w) => chunk({ content: w }, null));
}

export const OPENAI_DONE = [
  `data: ${JSON.stringify({ id: "chatcmpl-t", object: "chat.completion.chunk", created: 0, model: "m", choices: [{ index: 0, delta: {}, finish_reason: "stop" }] })}\n\n`,
  "data: [DONE]\n\n",
];

/** Reads a body until it has produced at least one chunk; returns that text and the reader. */
export async function readFirstChunk(body: ReadableStream<Uint8Array>) {
  const reader = body.getReader();
  const first = await reader.read();
  return { text: first.done ? "" : new TextDecoder().decode(first.value), reader };
}
