/**
 * A scriptable HTTP upstream on port 0 for integration tests: it records every request,
 * lets a test wait for the n-th one (no sleeps), and answers with whatever handler is set.
 *
 *   await using upstream = await startFakeUpstream((req) => new Response("ok"));
 *   await fetch(`${upstream.url}/v1/models`);
 *   await upstream.wait(1);
 *   expect(upstream.calls[0]!.headers.authorization).toBe("Bearer sk-…");
 */

export interface RecordedCall {
  method: string;
  /** Path and query, e.g. `/v1/models?key=abc`. */
  path: string;
  /** Lower-cased header names. */
  headers: Record<string, string>;
  body: string;
}

/** Answers one request; `call` is the recorded form (body already read — don't read `req.body` again). */
export type FakeHandler = (req: Request, call: RecordedCall) => Response | Promise<Response>;

export interface FakeUpstream extends AsyncDisposable {
  url: string;
  port: number;
  calls: RecordedCall[];
  /** Requests currently being handled, and the most there have been at once. */
  readonly inFlight: number;
  readonly maxInFlight: number;
  /** Resolves once at least `n` requests have arrived (counted when they arrive, before they are answered). */
  wait(n: number): Promise<void>;
  setHandler(handler: FakeHandler): void;
  /** Closes the server and any connection still open — including requests a handler never answered. */
  stop(): Promise<void>;
}

const defaultHandler: FakeHandler = () => new Response("ok");

/** A handler that never answers: for timeouts. `stop()` still closes its connections. */
export const neverAnswer: FakeHandler = () => new Promise<Response>(() => {});

export async function startFakeUpstream(handler: FakeHandler = defaultHandler): Promise<FakeUpstream> {
  let current = handler;
  const calls: RecordedCall[] = [];
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  let inFlight = 0;
  let maxInFlight = 0;

  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      const url = new URL(req.url);
      const call: RecordedCall = {
        method: req.method,
        path: url.pathname + url.search,
        headers: Object.fromEntries(req.headers),
        body: await req.text(),
      };
      calls.push(call);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      for (const waiter of waiters.filter((w) => calls.length >= w.n)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
      try {
        return await current(req, call);
      } finally {
        inFlight--;
      }
    },
  });

  const port = server.port!;
  const stop = async () => {
    await server.stop(true);
  };
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    calls,
    get inFlight() {
      return inFlight;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    wait(n) {
      if (calls.length >= n) return Promise.resolve();
      return new Promise<void>((resolve) => waiters.push({ n, resolve }));
    },
    setHandler(next) {
      current = next;
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** A URL on which nothing listens: bind a port, then close it (connection refused, not a timeout). */
export async function deadUrl(): Promise<string> {
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
  const url = `http://127.0.0.1:${server.port}`;
  await server.stop(true);
  return url;
}
