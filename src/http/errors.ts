import { DomainError, type ErrorCode } from "../pool/errors";

/** Every JSON route reads its body as JSON whatever the Content-Type (see _any-json-body.ts). */
const NOT_JSON =
  'request body is not valid JSON — send one JSON object, e.g. {"id":"key1","ok":true}; any Content-Type is read as JSON';

/** The one table from error codes to HTTP statuses. */
export const STATUS_BY_CODE: Record<ErrorCode, number> = {
  NO_KEY_AVAILABLE: 503,
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

export function errorResponse(code: ErrorCode | "INTERNAL", message: string, status: number, headers: Record<string, string> = {}): Response {
  return Response.json({ error: { code, message } }, { status, headers });
}

/** Maps anything a route throws to `{"error":{"code","message"}}`; unexpected errors say nothing internal. */
export function toErrorResponse(error: unknown, elysiaCode: string | number): Response {
  if (error instanceof DomainError) {
    const headers: Record<string, string> = {};
    if (error.retryAfterMs !== undefined) headers["retry-after"] = String(Math.max(1, Math.ceil(error.retryAfterMs / 1000)));
    return errorResponse(error.code, error.message, STATUS_BY_CODE[error.code], headers);
  }
  switch (elysiaCode) {
    case "VALIDATION":
      return errorResponse("BAD_REQUEST", describeValidation(error), 400);
    case "PARSE":
      // Never the parser's own message: it quotes the body, which may hold a token.
      return errorResponse("BAD_REQUEST", NOT_JSON, 400);
    case "NOT_FOUND":
      return errorResponse("NOT_FOUND", "no such route; see /swagger for the API", 404);
    default:
      return errorResponse("INTERNAL", "internal error; see the keypool log", 500);
  }
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
