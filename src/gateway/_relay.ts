export interface RelayHooks {
  /** Sees each chunk as it passes (e.g. to read token usage); must not hold the stream up. */
  onChunk?(chunk: Uint8Array): void;
  /** The upstream body ended normally and the client has it all. */
  onComplete(): void;
  /** The upstream connection failed mid-body. */
  onUpstreamError(error: unknown): void;
  /** The client stopped reading (disconnected). */
  onClientCancel(): void;
}

/**
 * Passes an upstream body to the client chunk by chunk and reports how the stream ended (once).
 *
 * A "direct" stream (Bun's): one loop writes each chunk straight into the client's connection and
 * flushes it, so an event leaves as soon as it arrives, and waits when the connection's buffer is full
 * (backpressure reaches the upstream). A pull-based stream instead costs a promise and a queue round
 * trip per chunk on each side; on an SSE answer of a dozen events that was the relay's whole cost.
 */
export function relayBody(upstream: ReadableStream<Uint8Array>, hooks: RelayHooks): ReadableStream<Uint8Array> {
  const reader = upstream.getReader();
  let ended = false;
  const end = (report: () => void) => {
    if (ended) return;
    ended = true;
    report();
  };
  const clientGone = () => {
    end(() => hooks.onClientCancel());
    reader.cancel().catch(() => {});
  };
  return new ReadableStream<Uint8Array>({
    type: "direct",
    async pull(controller) {
      for (;;) {
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await reader.read();
        } catch (error) {
          end(() => hooks.onUpstreamError(error));
          // A reason of our own: Bun prints an errored response stream's reason to stderr, and the
          // fetch error names the upstream URL — which holds the token with auth_query. The client
          // only ever sees the connection cut; the gateway logs the event itself.
          controller.close(new Error("the upstream broke off its answer"));
          return;
        }
        if (chunk.done) break;
        if (ended) return;
        hooks.onChunk?.(chunk.value);
        const ok = sent(controller, chunk.value);
        if (!(typeof ok === "boolean" ? ok : await ok)) {
          clientGone();
          return;
        }
      }
      end(() => hooks.onComplete());
      controller.close();
    },
    cancel() {
      clientGone();
    },
  });
}

/**
 * Writes and flushes one chunk; false once the client is gone. A promise only while the client's buffer
 * is full: the usual chunk goes out without one.
 */
function sent(controller: ReadableStreamDirectController, chunk: Uint8Array): boolean | Promise<boolean> {
  try {
    const written = controller.write(chunk);
    if (typeof written !== "number") return written.then((n) => n > 0 && flushed(controller), notSent);
    return (written > 0 || chunk.length === 0) && flushed(controller);
  } catch {
    return false;
  }
}

const notSent = () => false;

function flushed(controller: ReadableStreamDirectController): boolean | Promise<boolean> {
  const pending = controller.flush();
  return typeof pending === "number"
    ? true
    : pending.then(
        () => true,
        () => false,
      );
}
