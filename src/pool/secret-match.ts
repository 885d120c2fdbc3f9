import { createHash, timingSafeEqual } from "node:crypto";

/**
 * Checks a presented secret against a set of accepted ones in constant time: both sides are hashed
 * first (equal lengths whatever was sent), and every accepted secret is compared, so timing reveals
 * neither how much of a key was right nor which key matched.
 */
export function createSecretMatcher(accepted: readonly string[]): (presented: string | null) => boolean {
  const digests = accepted.map(digest);
  return function matchesSecret(presented: string | null): boolean {
    if (presented === null) return false;
    const candidate = digest(presented);
    let found = false;
    for (const expected of digests) found = timingSafeEqual(candidate, expected) || found;
    return found;
  };
}

/** The credential a client sent as `X-API-Key` or `Authorization: Bearer`, if any. */
export function presentedCredential(headers: Headers): string | null {
  const apiKey = headers.get("x-api-key");
  if (apiKey !== null) return apiKey;
  const authorization = headers.get("authorization");
  if (authorization?.toLowerCase().startsWith("bearer ")) return authorization.slice(7).trim();
  return null;
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}
