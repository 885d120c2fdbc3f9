import { scrubTokenFromHeaders } from "./_scrub-token";

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

/**
 * The client headers an upstream API needs, and why; nothing else the client sends is forwarded. The
 * upstream sees the pooled key's account, not the client: the client's cookies, its own organization
 * or project (they belong to the key's account), its address (`Forwarded`, `X-Forwarded-*`,
 * `X-Real-IP`) and whatever else it adds stay here. `upstream.forward_headers` adds names a pool needs.
 */
const FORWARDED_REQUEST_HEADERS = new Set([
  // What the body is and how it is compressed: the upstream cannot read the body without them.
  "content-type",
  "content-encoding",
  // Which answer the client can take: JSON or an event stream, and compressed or not.
  "accept",
  "accept-encoding",
  // SDKs name themselves; upstreams use it to work around old client versions.
  "user-agent",
  // Anthropic's API version and beta features: required to get the answer the client was written for.
  "anthropic-version",
  "anthropic-beta",
  "anthropic-dangerous-direct-browser-access",
  // OpenAI's beta features (Assistants v2 needs it).
  "openai-beta",
  // Make a retried request safe to replay (OpenAI, Anthropic); the client's own request ids for tracing.
  "idempotency-key",
  "x-client-request-id",
  // The Google SDKs' version header, like user-agent.
  "x-goog-api-client",
]);

/**
 * Header-name prefixes forwarded for the same reasons: the OpenAI and Anthropic SDKs' `x-stainless-*`
 * describe the SDK, the runtime and the retry count (`x-stainless-retry-count`) and set the upstream's
 * own timeout (`x-stainless-timeout`).
 */
const FORWARDED_REQUEST_PREFIXES = ["x-stainless-"];

export interface UpstreamHeaderOptions {
  authHeader?: string;
  authValue?: string;
  /** Lower-case names forwarded besides FORWARDED_REQUEST_HEADERS (upstream.forward_headers). */
  extra?: readonly string[];
}

/** The headers sent upstream: the allowed ones of the client's (see FORWARDED_REQUEST_HEADERS), plus the key. */
export function upstreamRequestHeaders(incoming: Headers, options: UpstreamHeaderOptions): Headers {
  const headers = new Headers();
  for (const [name, value] of incoming) {
    if (isForwarded(name, options.extra)) headers.append(name, value);
  }
  if (options.authHeader && options.authValue !== undefined) headers.set(options.authHeader, options.authValue);
  return headers;
}

function isForwarded(name: string, extra: readonly string[] | undefined): boolean {
  if (FORWARDED_REQUEST_HEADERS.has(name) || FORWARDED_REQUEST_PREFIXES.some((p) => name.startsWith(p))) return true;
  return extra?.includes(name) ?? false;
}

/** The headers sent back to the client: the upstream's minus hop-by-hop ones, the key scrubbed from every value. */
export function clientResponseHeaders(upstream: Headers, token: string): Headers {
  return scrubTokenFromHeaders(stripHopByHop(new Headers(upstream)), token);
}
