import type { Server } from "bun";
import { Elysia, type TSchema } from "elysia";
import type { BrokerService, TakeBody } from "../broker/broker-service";
import { decodeLate } from "./_late-decode";
import { ReleaseRequest, ReleaseResult, TakeBody as TakeAnswerSchema, TakeQuery, errors } from "./schemas";

// Every take and release comes through here, so Elysia is left only what only it can do. The
// release body's token counts are decoded by the handler (see decodeLate); a query cannot be spared
// that way, as Elysia turns any number in one back into a decoder. And the answers, which
// BrokerService builds from typed store results, are documented but not checked again.
// A listener serves both routes through broker-fast-routes.ts instead; these definitions are what
// the OpenAPI document shows, and what app.handle() (no socket) runs.
export const releaseBody = decodeLate(ReleaseRequest);
const TakeAnswer = documentedOnly(TakeAnswerSchema);
const ReleaseAnswer = documentedOnly(ReleaseResult);

export type TakeQueryValue = typeof TakeQuery.static;

/**
 * The take both routes make. `idleTimeoutSec` is the listener's: a take that waits in line turns it
 * off while it waits (the connection is quiet through no fault of the client's) and back on after.
 */
export function brokerTake(broker: BrokerService, idleTimeoutSec: number) {
  const takeWaiting = async (query: TakeQueryValue, request: Request, server: Server<unknown> | null) => {
    server?.timeout(request, 0);
    try {
      const { pool, session, wait, model } = query;
      return await broker.take(pool, { session, model, waitSec: wait, signal: request.signal });
    } finally {
      server?.timeout(request, idleTimeoutSec);
    }
  };
  return function take(query: TakeQueryValue, request: Request, server: Server<unknown> | null): Promise<TakeBody> {
    return query.wait
      ? takeWaiting(query, request, server)
      : broker.take(query.pool, { session: query.session, model: query.model, signal: request.signal });
  };
}

/** GET /take and POST /release, for the OpenAPI document and for app.handle(). */
export function brokerRoutes(broker: BrokerService, idleTimeoutSec: number) {
  const take = brokerTake(broker, idleTimeoutSec);
  // normalize: false so unknown fields are rejected (a typo like "staus" must not pass silently).
  return new Elysia({ name: "broker", normalize: false })
    .get("/take", async ({ query, request, server }) => take(query, request, server), {
      query: TakeQuery,
      response: { 200: TakeAnswer, ...errors(400, 401, 404, 503) },
      detail: {
        summary: "Take a healthy key",
        description:
          "Hands out the best available key and a lease on it, from the pool or, when it has none, from its `fallback` pools (`pool` in the answer says which). " +
          "`session` keeps one conversation on one key while that key is usable; `wait` waits in line for a key instead of failing at once; " +
          "`model` skips keys resting or denied for that model (a rate limit on one model leaves the key's others alone). " +
          "503 with `Retry-After` when no key is (or became) free; 404 for an unknown pool.",
        tags: ["broker"],
      },
    })
    .post("/release", ({ body }) => broker.release(releaseBody.decode(body)), {
      body: releaseBody.schema,
      response: { 200: ReleaseAnswer, ...errors(400, 401, 404, 413) },
      detail: {
        summary: "Report how a key did and give it back",
        description:
          "Give `lease` (from /take) or `id`. `ok: false` with the upstream `status` rests (429, 5xx) or quarantines (401, 403) the key. " +
          "With `model`, a rate limit or an overloaded model rests only that (key, model) pair (`pair` in the answer), and an answer " +
          "saying the key cannot use the model denies the pair: `model_denied: true` says to retry on another key.",
        tags: ["broker"],
      },
    });
}

/**
 * A copy of `schema` that Elysia leaves unchecked (what t.NoValidate marks), with the mark kept out of
 * the OpenAPI document: not enumerable, so the document's JSON does not show it.
 */
function documentedOnly<T extends TSchema>(schema: T): T {
  return Object.defineProperty({ ...schema }, "noValidate", { value: true });
}
