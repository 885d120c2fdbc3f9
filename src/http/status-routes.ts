import { Elysia, t } from "elysia";
import type { BrokerService } from "../broker/broker-service";
import type { CompatService } from "../broker/compat-service";
import { PoolQuery, StatusBody, errors, listLimit } from "./schemas";

const ratio = (description: string) => t.Union([t.Number(), t.Null()], { description });

const SessionsBody = t.Object(
  {
    pool: t.String({ examples: ["default"] }),
    sessions: t.Array(
      t.Object({
        session: t.String({
          description: "The session id (an overlong one is its sha256; a fingerprint starts with fp:)",
        }),
        key: t.String({ description: "The session's own key" }),
        requests: t.Integer({ description: "Answers the session got while its mapping lived" }),
        input_tokens: t.Integer({ description: "Every prompt token, cached or not" }),
        output_tokens: t.Integer(),
        cached_tokens: t.Integer({ description: "Input tokens read from the provider's prompt cache" }),
        cache_write_tokens: t.Integer({ description: "Input tokens written to the provider's prompt cache" }),
        cache_hit_ratio: ratio("cached_tokens / input_tokens; null before any input"),
        expires_at: t.String({
          format: "date-time",
          description: "When the mapping lapses unless the session uses its key again",
        }),
      }),
    ),
  },
  {
    examples: [
      {
        pool: "default",
        sessions: [
          {
            session: "conv-42",
            key: "a",
            requests: 12,
            input_tokens: 96000,
            output_tokens: 2400,
            cached_tokens: 81000,
            cache_write_tokens: 8000,
            cache_hit_ratio: 0.84375,
            expires_at: "2026-01-01T13:00:00.000Z",
          },
        ],
      },
    ],
  },
);

/**
 * GET /status and GET /sessions (auth) — /health lives in the app root because it must bypass auth.
 * With `compat`, /status also carries Key Pool Manager's `status`, `timestamp` and `models`.
 */
export function statusRoutes(broker: BrokerService, compat?: CompatService) {
  const status = async (pool: string | undefined) => {
    const own = await broker.status(pool);
    return compat ? { ...compat.statusFields(own), ...own } : own;
  };
  // normalize: false so fields added to status rows reach clients before the schema learns of them.
  return new Elysia({ name: "status", normalize: false })
    .get("/status", ({ query }) => status(query.pool || undefined), {
      query: PoolQuery,
      response: { 200: StatusBody, ...errors(400, 401, 404) },
      detail: { summary: "Keys by state, with the reason and until of each; tokens masked", tags: ["status"] },
    })
    .get("/sessions", ({ query }) => broker.sessions(query.pool || undefined, query.limit), {
      query: t.Object({
        pool: t.Optional(
          t.String({
            maxLength: 64,
            description: "Pool name; may be left out with one pool, or one named default",
            examples: ["default"],
          }),
        ),
        limit: t.Optional(listLimit("At most this many sessions (default 20)")),
      }),
      response: { 200: SessionsBody, ...errors(400, 401, 404) },
      detail: {
        summary: "A pool's sticky sessions with the most input tokens, and their prompt-cache hit ratio",
        description:
          "Live sessions only (a lapsed or evicted mapping takes its totals with it), most input tokens first.",
        tags: ["status"],
      },
    });
}
