import { Elysia } from "elysia";
import type { BrokerService } from "./broker-service";
import { ReleaseRequest, ReleaseResult, TakeBody, TakeQuery, errors } from "./schemas";

/** GET /take and POST /release. */
export function brokerRoutes(broker: BrokerService) {
  // normalize: false so unknown fields are rejected (a typo like "staus" must not pass silently).
  return new Elysia({ name: "broker", normalize: false })
    .get("/take", ({ query, request }) => broker.take(query.pool, { session: query.session, waitSec: query.wait, signal: request.signal }), {
      query: TakeQuery,
      response: { 200: TakeBody, ...errors(400, 401, 404, 503) },
      detail: {
        summary: "Take a healthy key",
        description:
          "Hands out the best available key and a lease on it, from the pool or, when it has none, from its `fallback` pools (`pool` in the answer says which). " +
          "`session` keeps one conversation on one key while that key is usable; `wait` waits in line for a key instead of failing at once. " +
          "503 with `Retry-After` when no key is (or became) free; 404 for an unknown pool.",
        tags: ["broker"],
      },
    })
    .post("/release", ({ body }) => broker.release(body), {
      body: ReleaseRequest,
      response: { 200: ReleaseResult, ...errors(400, 401, 404, 413) },
      detail: {
        summary: "Report how a key did and give it back",
        description: "Give `lease` (from /take) or `id`. `ok: false` with the upstream `status` rests (429, 5xx) or quarantines (401, 403) the key.",
        tags: ["broker"],
      },
    });
}
