import { Elysia } from "elysia";
import type { BrokerService } from "./broker-service";
import { PoolQuery, StatusBody, errors } from "./schemas";

/** GET /status (auth) — /health lives in the app root because it must bypass auth. */
export function statusRoutes(broker: BrokerService) {
  // normalize: false so fields added to status rows reach clients before the schema learns of them.
  return new Elysia({ name: "status", normalize: false }).get("/status", ({ query }) => broker.status(query.pool || undefined), {
    query: PoolQuery,
    response: { 200: StatusBody, ...errors(400, 401, 404) },
    detail: { summary: "Keys by state, with the reason and until of each; tokens masked", tags: ["status"] },
  });
}
