import { Elysia, t } from "elysia";
import type { BrokerService } from "./broker-service";

/** GET /status (auth) — /health lives in the app root because it must bypass auth. */
export function statusRoutes(broker: BrokerService) {
  return new Elysia({ name: "status" }).get("/status", ({ query }) => broker.status(query.pool || undefined), {
    query: t.Object({ pool: t.Optional(t.String({ maxLength: 64 })) }),
    detail: { summary: "Keys by state, with the reason and until of each; tokens masked", tags: ["status"] },
  });
}
