import { Elysia, t } from "elysia";
import { DomainError } from "../pool/errors";
import { REPORTED_HEALTH, type CompatService } from "../broker/compat-service";
import { type Logger, REQUEST_ID_HEADER } from "../log";
import { STATUS_BY_CODE, logRefusal } from "./errors";
import { ErrorBody, errors } from "./schemas";

const PoolParam = t.Object({
  pool: t.String({ maxLength: 64, description: "Pool name (the model, in similar tools)", examples: ["gpt-4"] }),
});

const CompatError = t.Object(
  {
    success: t.Literal(false),
    model: t.String({ examples: ["gpt-4"] }),
    error: t.Object({ code: t.String({ examples: ["NO_KEY_AVAILABLE"] }), message: t.String() }),
  },
  { description: "A compatibility route's error: success false, and the usual error object" },
);

/**
 * A 400 is the compatibility shape when the route refuses the key itself (whitespace in a token), and the
 * usual shape when the body fails validation before the route runs.
 */
const CompatBadRequest = t.Union([CompatError, ErrorBody]);

const CompatKey = t.Object(
  {
    success: t.Literal(true),
    model: t.String({ description: "The pool's name", examples: ["gpt-4"] }),
    key: t.String({ description: "The token itself", examples: ["sk-test-aaaaaaaaaaaaaaaaaaaaaaaa"] }),
    pool: t.Object({
      totalKeys: t.Number({ examples: [3] }),
      healthyKeys: t.Number({ description: "Keys neither out (failed) nor resting after a failure", examples: [2] }),
    }),
  },
  {
    examples: [
      {
        success: true,
        model: "gpt-4",
        key: "sk-test-aaaaaaaaaaaaaaaaaaaaaaaa",
        pool: { totalKeys: 3, healthyKeys: 2 },
      },
    ],
  },
);

const HealthReport = t.Object(
  {
    key: t.String({ minLength: 1, maxLength: 8192, description: "The token, as GET /keys/:pool handed it out" }),
    status: t.UnionEnum(REPORTED_HEALTH, {
      description:
        "healthy: in rotation; degraded: out for 5 min; rate_limited: out for 15 min; " +
        "failed: out until reported healthy or re-added",
    }),
    error: t.Optional(
      t.Union([t.String({ maxLength: 4096 }), t.Null()], {
        description: "The upstream's error, if any: refines the class the failure is counted under",
      }),
    ),
  },
  { examples: [{ key: "sk-test-aaaaaaaaaaaaaaaaaaaaaaaa", status: "rate_limited", error: null }] },
);

const HealthResult = t.Object(
  {
    success: t.Literal(true),
    model: t.String({ examples: ["gpt-4"] }),
    id: t.String({ description: "The key's id", examples: ["key-5810d3946d"] }),
    state: t.String({ description: "The key's state now", examples: ["cooling"] }),
    reason: t.Union([t.String(), t.Null()], { description: "Why the key is in its state" }),
  },
  {
    examples: [
      {
        success: true,
        model: "gpt-4",
        id: "key-5810d3946d",
        state: "cooling",
        reason: "reported rate_limited; back in 15m",
      },
    ],
  },
);

const KeyBody = t.Object(
  { key: t.String({ minLength: 1, maxLength: 8192, description: "The token; never echoed back" }) },
  { examples: [{ key: "sk-test-cccccccccccccccccccccccc" }] },
);

const KeyChange = t.Object(
  {
    success: t.Literal(true),
    model: t.String({ examples: ["gpt-4"] }),
    id: t.String({ description: "The key's id", examples: ["key-5810d3946d"] }),
    masked: t.String({ examples: ["sk-…cccc"] }),
    result: t.UnionEnum(["added", "enabled", "removed", "disabled"], {
      description: "added/removed: a key of the admin API's own; enabled/disabled: a key the config defines, switched",
    }),
    pool: t.Object({ totalKeys: t.Number(), healthyKeys: t.Number() }),
  },
  {
    examples: [
      {
        success: true,
        model: "gpt-4",
        id: "key-5810d3946d",
        masked: "sk-…cccc",
        result: "added",
        pool: { totalKeys: 3, healthyKeys: 3 },
      },
    ],
  },
);

/**
 * `GET|POST|DELETE /keys/:pool` and `POST /health/:pool`, shaped like similar key-rotation tools so their
 * clients work unchanged. Errors keep those tools' `success: false`.
 */
export function compatRoutes(compat: CompatService, logger: Logger) {
  return new Elysia({ name: "compat" })
    .get(
      "/keys/:pool",
      async ({ params, set, status, request }) => {
        try {
          return await compat.take(params.pool);
        } catch (error) {
          const failure = compatFailure(params.pool, error, set.headers, logger, request);
          return status(failure.status as 503, failure.body);
        }
      },
      {
        params: PoolParam,
        response: { 200: CompatKey, ...errors(401), 400: CompatBadRequest, 404: CompatError, 503: CompatError },
        detail: {
          summary: "Take a key (compatibility)",
          description: "Like GET /take, for clients of similar tools. No lease: report with POST /health/:pool.",
          tags: ["compat"],
        },
      },
    )
    .post(
      "/health/:pool",
      async ({ params, body, set, status, request }) => {
        try {
          return await compat.report(params.pool, body);
        } catch (error) {
          const failure = compatFailure(params.pool, error, set.headers, logger, request);
          return status(failure.status as 404, failure.body);
        }
      },
      {
        params: PoolParam,
        body: HealthReport,
        response: { 200: HealthResult, ...errors(401, 413), 400: CompatBadRequest, 404: CompatError },
        detail: {
          summary: "Report how a key did (compatibility)",
          description: "Names the key by its token. An unknown token answers 404 without echoing it.",
          tags: ["compat"],
        },
      },
    )
    .post(
      "/keys/:pool",
      async ({ params, body, set, status, request }) => {
        try {
          return await compat.add(params.pool, body.key);
        } catch (error) {
          const failure = compatFailure(params.pool, error, set.headers, logger, request);
          return status(failure.status as 409, failure.body);
        }
      },
      {
        params: PoolParam,
        body: KeyBody,
        response: { 200: KeyChange, ...errors(401, 413), 400: CompatBadRequest, 404: CompatError, 409: CompatError },
        detail: {
          summary: "Add a key by its token (compatibility)",
          description:
            "Like POST /pools/:pool/keys. A token the config defines and DELETE switched off is switched back on; " +
            "409 when the key is already in rotation.",
          tags: ["compat"],
        },
      },
    )
    .delete(
      "/keys/:pool",
      async ({ params, body, set, status, request }) => {
        try {
          return await compat.remove(params.pool, body.key);
        } catch (error) {
          const failure = compatFailure(params.pool, error, set.headers, logger, request);
          return status(failure.status as 404, failure.body);
        }
      },
      {
        params: PoolParam,
        body: KeyBody,
        response: { 200: KeyChange, ...errors(401, 413), 400: CompatBadRequest, 404: CompatError },
        detail: {
          summary: "Take a key out by its token (compatibility)",
          description:
            "A key the admin API added is removed; one the environment or a tokens file defines is disabled " +
            "(the config would bring it back).",
          tags: ["compat"],
        },
      },
    );
}

/** A domain error in the compatibility shape, logged with its request id; others go to the app's error mapping. */
function compatFailure(
  model: string,
  error: unknown,
  headers: Record<string, unknown>,
  logger: Logger,
  request: Request,
) {
  if (!(error instanceof DomainError)) throw error;
  if (error.retryAfterMs !== undefined)
    headers["retry-after"] = String(Math.max(1, Math.ceil(error.retryAfterMs / 1000)));
  const status = STATUS_BY_CODE[error.code];
  headers[REQUEST_ID_HEADER] = logRefusal(logger, request, status, error.code);
  return { status, body: { success: false as const, model, error: { code: error.code, message: error.message } } };
}
