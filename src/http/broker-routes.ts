import { Elysia } from "elysia";
import type { BrokerService } from "./broker-service";
import { PoolQuery, ReleaseRequest, ReleaseResult, TakeBody, errors } from "./schemas";

/** GET /take and POST /release. */
export function brokerRoutes(broker: BrokerService) {
  // normalize: false so unknown fields are rejected (a typo like "staus" must not pass silently).
  return new Elysia({ name: "broker", normalize: false })
    .get("/take", ({ query }) => broker.take(query.pool), {
      query: PoolQuery,
      response: { 200: TakeBody, ...errors(400, 401, 404, 503) },
      detail: {
        summary: "Take a healthy key",
        description:
          "Hands out the best available key and a lease on it. 503 with `Retry-After` when every key is resting; 404 for an unknown pool.",
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
