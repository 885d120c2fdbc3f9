import { Elysia, t } from "elysia";
import type { BrokerService } from "./broker-service";

const errorShape = t.Object({ error: t.Object({ code: t.String(), message: t.String() }) });

/** GET /take and POST /release. */
export function brokerRoutes(broker: BrokerService) {
  // normalize: false so unknown fields are rejected (a typo like "staus" must not pass silently).
  return new Elysia({ name: "broker", normalize: false })
    .get("/take", ({ query }) => broker.take(query.pool), {
      query: t.Object({ pool: t.Optional(t.String({ maxLength: 64 })) }),
      response: {
        200: t.Object({ id: t.String(), token: t.String(), pool: t.String(), lease: t.String(), expires_at: t.String() }),
        503: errorShape,
      },
      detail: { summary: "Take a healthy key", tags: ["broker"] },
    })
    .post("/release", ({ body }) => broker.release(body), {
      body: t.Object(
        {
          lease: t.Optional(t.String({ minLength: 1, maxLength: 128 })),
          id: t.Optional(t.String({ minLength: 1, maxLength: 128 })),
          pool: t.Optional(t.String({ maxLength: 64 })),
          ok: t.Boolean(),
          status: t.Optional(t.Integer({ minimum: 100, maximum: 599 })),
        },
        { additionalProperties: false },
      ),
      detail: { summary: "Report how a key did and give it back", tags: ["broker"] },
    });
}
