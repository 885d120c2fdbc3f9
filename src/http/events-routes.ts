import { Elysia, t } from "elysia";
import { FAILURE_CLASSES } from "../pool/classify";
import type { BrokerService } from "../broker/broker-service";
import { KeyStateSchema, errors, listLimit } from "./schemas";

const PairStateSchema = t.UnionEnum(["ready", "cooling", "denied", "restricted"], {
  description: "A (key, model) pair's state, in events that name a model",
});

const nullable = <T extends Parameters<typeof t.Union>[0][number]>(schema: T) => t.Union([schema, t.Null()]);

const KeyEventSchema = t.Object({
  at: t.String({ format: "date-time", description: "When the transition happened" }),
  pool: t.String({ examples: ["default"] }),
  key: t.String({ description: "Key id", examples: ["a"] }),
  model: t.Optional(
    t.String({ description: "Set when the transition is the key's pair for this model, not the key's own" }),
  ),
  from: t.Union([KeyStateSchema, PairStateSchema]),
  to: t.Union([KeyStateSchema, PairStateSchema]),
  class: nullable(t.UnionEnum([...FAILURE_CLASSES], { description: "The failure class that caused it, if any" })),
  reason: nullable(t.String({ examples: ["rate_limit (HTTP 429); rung 1, resting 1m"] })),
  until: nullable(t.String({ format: "date-time", description: "When the new state ends by itself" })),
});

/** GET /events (auth): the bounded log of recent key state transitions. */
export function eventsRoutes(broker: BrokerService) {
  return new Elysia({ name: "events", normalize: false }).get("/events", ({ query }) => broker.events(query), {
    query: t.Object({
      pool: t.Optional(t.String({ maxLength: 64, description: "Only this pool's keys" })),
      key: t.Optional(t.String({ maxLength: 128, description: "Only this key (by id)" })),
      since: t.Optional(
        t.String({
          maxLength: 40,
          description: "Only events after this ISO 8601 time or epoch milliseconds; then the first `limit` of them",
        }),
      ),
      limit: t.Optional(listLimit("At most this many (default 100)")),
    }),
    response: { 200: t.Object({ events: t.Array(KeyEventSchema) }), ...errors(400, 401, 404) },
    detail: {
      summary: "Recent key state transitions",
      description: "Oldest first. Without `since`, the most recent `limit` transitions; the log keeps the last 10,000.",
      tags: ["status"],
    },
  });
}
