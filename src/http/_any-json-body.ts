import { DomainError } from "../pool/errors";

/**
 * Every body the API accepts is JSON, so a body is read as JSON whatever its Content-Type says:
 * `curl -d` labels its data application/x-www-form-urlencoded, `fetch` with a string text/plain,
 * and poolctl's users send their JSON that way. `contentType` comes without its parameters.
 * Answers undefined, synchronously, for application/json: Elysia's own parser reads that, and a
 * release pays for no promise.
 */
export function parseAnyJson({ request, contentType }: { request: Request; contentType: string }): Promise<unknown> | undefined {
  return contentType === "application/json" ? undefined : readJson(request, contentType);
}

async function readJson(request: Request, contentType: string): Promise<unknown> {
  const text = await request.text();
  // A POST without a body means no fields; the route's schema then names the ones it needs.
  if (text.trim() === "") return {};
  try {
    return JSON.parse(text);
  } catch {
    // The parser's own message quotes the body, which may hold a token: it is left out.
    const sentAs = contentType ? ` (sent as ${contentType})` : "";
    throw new DomainError("BAD_REQUEST", `request body is not JSON${sentAs} — send a JSON object, e.g. {"id":"key1","ok":true}`);
  }
}
