/**
 * Every body the API accepts is JSON, so a body is read as JSON whatever its Content-Type says:
 * `curl -d` labels its data application/x-www-form-urlencoded, `fetch` with a string text/plain,
 * and poolctl's users send their JSON that way. `contentType` comes without its parameters.
 * Answers undefined, synchronously, for application/json: Elysia's own parser reads that, and a
 * release pays for no promise. A body that is not JSON throws, and Elysia reports it as a PARSE error.
 */
export function parseAnyJson(context: { request: Request; contentType: string }): Promise<unknown> | undefined {
  const { request, contentType } = context;
  return contentType === "application/json" ? undefined : readJson(request);
}

async function readJson(request: Request): Promise<unknown> {
  const text = await request.text();
  // A POST without a body means no fields; the route's schema then names the ones it needs.
  return text.trim() === "" ? {} : JSON.parse(text);
}

/**
 * What Elysia with parseAnyJson makes of a request's body, for a route served outside Elysia; throws
 * what JSON.parse throws. A body with text in it is JSON whatever its type (application/json included:
 * Request.json() is JSON.parse of the same text), and an empty one is no fields. Only a blank one
 * needs a header: sent as application/json, Elysia took it for malformed JSON.
 */
export async function readAnyJsonBody(request: Request): Promise<unknown> {
  const text = await request.text();
  if (text.trim() !== "") return JSON.parse(text);
  if (text === "") return {};
  const contentType = request.headers.get("content-type")?.split(";", 1)[0];
  return contentType === "application/json" ? JSON.parse(text) : {};
}
