import { createSecretMatcher, presentedCredential } from "../pool/secret-match";

/** Checks a request's `X-API-Key` or `Authorization: Bearer` against the configured key, in constant time. */
export function createApiKeyCheck(apiKey: string): (request: Request) => boolean {
  const matches = createSecretMatcher([apiKey]);
  return function hasValidApiKey(request: Request): boolean {
    return matches(presentedCredential(request.headers));
  };
}
