import { type Logger, REQUEST_ID_HEADER, errorFields, loggedPath, newRequestId } from "../log";
import { DomainError, type ErrorCode } from "../pool/errors";

/** Every JSON route reads its body as JSON whatever the Content-Type (see _any-json-body.ts). */
const NOT_JSON =
  "request body is not valid JSON — send one JSON object (see /swagger for each route's); any Content-Type is read as JSON";

/** The one table from error codes to HTTP statuses. */
export const STATUS_BY_CODE: Record<ErrorCode, number> = {
  NO_KEY_AVAILABLE: 503,
  BUDGET_EXHAUSTED: 503,
  UNKNOWN_LEASE: 404,
  UNKNOWN_KEY: 404,
  UNKNOWN_POOL: 404,
  NOT_FOUND: 404,
  AMBIGUOUS_KEY: 400,
  BAD_REQUEST: 400,
  INVALID_CONFIG: 400,
  UNAUTHORIZED: 401,
  PAYLOAD_TOO_LARGE: 413,
  KEY_OWNED_BY_FILE: 409,
  KEY_OWNED_BY_ENV: 409,
  KEY_EXISTS: 409,
  STORE_UNAVAILABLE: 503,
  STATE_FILE_LOST: 503,
  HOST_NOT_ALLOWED: 403,
  SERVER_BUSY: 503,
};

export type AnswerCode = ErrorCode | "INTERNAL";

/**
 * `{"error":{"code","message"}}`. The request id goes in a header, which every client can read
 * without the body's shape changing; the log line with the details carries the same id.
 */
export function errorResponse(
  code: AnswerCode,
  message: string,
  status: number,
  headers: Record<string, string> = {},
  requestId?: string,
): Response {
  const withId = requestId === undefined ? headers : { ...headers, [REQUEST_ID_HEADER]: requestId };
  return Response.json({ error: { code, message } }, { status, headers: withId });
}

/** Maps anything a route throws to `{"error":{"code","message"}}`; unexpected errors say nothing internal. */
export function toErrorResponse(error: unknown, elysiaCode: string | number, requestId: string): Response {
  if (error instanceof DomainError) {
    const headers: Record<string, string> = {};
    if (error.retryAfterMs !== undefined)
      headers["retry-after"] = String(Math.max(1, Math.ceil(error.retryAfterMs / 1000)));
    return errorResponse(error.code, error.message, STATUS_BY_CODE[error.code], headers, requestId);
  }
  switch (elysiaCode) {
    case "VALIDATION":
      return errorResponse("BAD_REQUEST", describeValidation(error), 400, {}, requestId);
    case "PARSE":
      // Never the parser's own message: it quotes the body, which may hold a token.
      return errorResponse("BAD_REQUEST", NOT_JSON, 400, {}, requestId);
    case "NOT_FOUND":
      return errorResponse("NOT_FOUND", "no such route; see /swagger for the API", 404, {}, requestId);
    default:
      return errorResponse("INTERNAL", internalMessage(requestId), 500, {}, requestId);
  }
}

function internalMessage(requestId: string): string {
  return `internal error; the keypool log has the details under request ${requestId}`;
}

/**
 * The one way an HTTP listener answers a failed request: the client gets a code, a message and a
 * request id; the log gets the same id with the method, the path and — for a failure of keypool's
 * own — the error and its stack, which never go into an answer.
 */
export function answerError(logger: Logger, request: Request, error: unknown, elysiaCode: string | number): Response {
  const requestId = newRequestId();
  const response = toErrorResponse(error, elysiaCode, requestId);
  const code = error instanceof DomainError ? error.code : String(elysiaCode);
  logAnswer(logger, request, response.status, requestId, error, code);
  return response;
}

/** An answer refused before routing (no API key, body too large), logged like any other error answer. */
export function refuseRequest(
  logger: Logger,
  request: Request,
  code: ErrorCode,
  message: string,
  status: number,
  headers: Record<string, string> = {},
): Response {
  return errorResponse(code, message, status, headers, logRefusal(logger, request, status, code));
}

/** For a route that answers an error in a shape of its own: logs the refusal, and returns the id to answer it with. */
export function logRefusal(logger: Logger, request: Request, status: number, code: ErrorCode): string {
  const requestId = newRequestId();
  logAnswer(logger, request, status, requestId, undefined, code);
  return requestId;
}

/**
 * Bun.serve's `error` option: the last resort for anything that escapes a listener's own handling.
 * Without it, and with `development` on, Bun answers with its HTML error page (source lines, paths).
 */
export function uncaughtErrorAnswer(logger: Logger): (error: Error) => Response {
  return function answerUncaught(error) {
    const requestId = newRequestId();
    logger.error("request failed", { request_id: requestId, status: 500, ...errorFields(error) });
    return errorResponse("INTERNAL", internalMessage(requestId), 500, {}, requestId);
  };
}

function logAnswer(logger: Logger, request: Request, status: number, requestId: string, error: unknown, code: string) {
  // The query stays out: a client may have put a credential in it.
  const fields = { request_id: requestId, method: request.method, path: loggedPath(request.url), status };
  if (status < 500 || error instanceof DomainError) logger.info("request refused", { ...fields, code });
  else logger.error("request failed", { ...fields, ...errorFields(error) });
}

interface ValidationIssue {
  path?: string;
  summary?: string;
  message?: string;
  value?: unknown;
}

/**
 * The first problem, named by its field. The value itself is never shown: a token sent in the wrong
 * field (or a wrongly typed one) would come straight back in the answer and into logs that record it.
 */
function describeValidation(error: unknown): string {
  // A schema's own `error` text: query numbers carry one, since Elysia checks each on its own and loses the name.
  const custom = (error as { customError?: unknown }).customError;
  if (typeof custom === "string") return custom;
  const first = (error as { all?: ValidationIssue[] }).all?.[0];
  if (!first) return "request does not match the expected shape";
  const where = first.path ? first.path.replace(/^\//, "").replaceAll("/", ".") : "body";
  return `${where || "body"}: ${withoutValue(first)}`;
}

function withoutValue({ summary, message, value }: ValidationIssue): string {
  // Elysia ends a type mismatch with "but found: VALUE".
  const text = (summary ?? message ?? "invalid value").replace(/ but found: [\s\S]*$/, "");
  const shown = typeof value === "string" && value.length >= 4 ? value : undefined;
  if (!shown || !text.includes(shown)) return text;
  return message && !message.includes(shown) ? message : "invalid value";
}
