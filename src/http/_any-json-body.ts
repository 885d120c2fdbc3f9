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
