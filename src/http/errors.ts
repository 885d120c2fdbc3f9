import { DomainError, type ErrorCode } from "../pool/errors";

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
      return errorResponse("BAD_REQUEST", "request body is not valid JSON", 400);
    case "NOT_FOUND":
      return errorResponse("NOT_FOUND", "no such route; see /swagger for the API", 404);
    default:
      return errorResponse("INTERNAL", "internal error; see the keypool log", 500);
  }
}

function describeValidation(error: unknown): string {
  const first = (error as { all?: Array<{ path?: string; summary?: string; message?: string }> }).all?.[0];
  if (!first) return "request does not match the expected shape";
  const where = first.path ? first.path.replace(/^\//, "").replaceAll("/", ".") : "body";
  return `${where || "body"}: ${first.summary ?? first.message ?? "invalid value"}`;
}
