/** Headers that describe one connection, not the message: never forwarded in either direction. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** Ways clients commonly present an API key; whatever the client sent is removed before forwarding. */
const CLIENT_CREDENTIAL_HEADERS = ["authorization", "x-api-key", "api-key", "x-goog-api-key"];

/** Removes hop-by-hop headers, including any the `Connection` header names (RFC 9110 §7.6.1). */
export function stripHopByHop(headers: Headers): Headers {
  const named = headers.get("connection");
  if (named) {
    for (const name of named.split(",")) {
      const trimmed = name.trim().toLowerCase();
      if (trimmed) headers.delete(trimmed);
    }
  }
  for (const name of HOP_BY_HOP) headers.delete(name);
  return headers;
}

export interface UpstreamHeaderOptions {
  authHeader?: string;
  authValue?: string;
  clientIp?: string;
  proto: string;
}

/** The headers sent upstream: the client's, minus hop-by-hop, Host, length and credentials, plus the key. */
export function upstreamRequestHeaders(incoming: Headers, options: UpstreamHeaderOptions): Headers {
  const headers = stripHopByHop(new Headers(incoming));
  headers.delete("host");
  headers.delete("content-length");
  for (const name of CLIENT_CREDENTIAL_HEADERS) headers.delete(name);
  if (options.authHeader && options.authValue !== undefined) headers.set(options.authHeader, options.authValue);
  if (options.clientIp) {
    const prior = incoming.get("x-forwarded-for");
    headers.set("x-forwarded-for", prior ? `${prior}, ${options.clientIp}` : options.clientIp);
  }
  headers.set("x-forwarded-proto", options.proto);
  return headers;
}

/** The headers sent back to the client: the upstream's minus hop-by-hop ones. */
export function clientResponseHeaders(upstream: Headers): Headers {
  return stripHopByHop(new Headers(upstream));
}
