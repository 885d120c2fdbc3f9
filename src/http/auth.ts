import { createHash, timingSafeEqual } from "node:crypto";

/**
 * Checks a request's `X-API-Key` or `Authorization: Bearer` against the configured key.
 * Both sides are hashed first so the comparison takes the same time whatever their lengths.
 */
export function createApiKeyCheck(apiKey: string): (request: Request) => boolean {
  const expected = digest(apiKey);
  return function hasValidApiKey(request: Request): boolean {
    const presented = presentedKey(request);
    if (presented === null) return false;
    return timingSafeEqual(digest(presented), expected);
  };
}

function presentedKey(request: Request): string | null {
  const header = request.headers.get("x-api-key");
  if (header !== null) return header;
  const authorization = request.headers.get("authorization");
  if (authorization?.toLowerCase().startsWith("bearer ")) return authorization.slice(7).trim();
  return null;
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}
