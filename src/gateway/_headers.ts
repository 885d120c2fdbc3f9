import { tokenSpellings } from "../pool/token-spellings";
import { REDACTED, scrubTokenFromHeaders } from "./_scrub-token";

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
  // Read in one native call and built in another: appending header by header costs a crossing each.
  // A repeated header comes joined by ", ", which is how HTTP reads a repeated list header anyway.
  const all: Record<string, string | string[]> = incoming.toJSON();
  const forwarded: Record<string, string> = {};
  for (const name in all) {
    const value = all[name]!;
    if (isForwarded(name, options.extra)) forwarded[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  if (options.authHeader && options.authValue !== undefined) {
    forwarded[options.authHeader.toLowerCase()] = options.authValue;
  }
  // Throws on a value no header can carry (a token with a newline): the caller handles it.
  return new Headers(forwarded);
}

function isForwarded(name: string, extra: readonly string[] | undefined): boolean {
  if (FORWARDED_REQUEST_HEADERS.has(name) || FORWARDED_REQUEST_PREFIXES.some((p) => name.startsWith(p))) return true;
  return extra?.includes(name) ?? false;
}

/** The headers sent back to the client: the upstream's minus hop-by-hop ones, the key scrubbed from every value. */
export function clientResponseHeaders(upstream: Headers, token: string): Headers {
  return scrubTokenFromHeaders(stripHopByHop(new Headers(upstream)), token);
}

/** Names keypool sets on every relayed answer: an upstream's own are replaced, not repeated. */
const KEYPOOL_HEADERS = new Set(["x-keypool-key", "x-keypool-pool", "x-keypool-attempts"]);

export interface RelayedHeaders {
  /** What clientResponseHeaders would give, as name/value pairs, without any x-keypool-* name keypool sets. */
  pairs: Array<[string, string]>;
  /** Whether any of the upstream's header names speaks of rate limits. */
  rateLimits: boolean;
}

/**
 * The headers of an answer relayed as it is, in one pass over the upstream's: the pairs come out ready
 * for `new Response` to take in one call, where building a Headers object, deleting the hop-by-hop
 * names and setting keypool's own cost a native call each, several microseconds a request.
 */
export function relayedHeaders(upstream: Headers, token: string): RelayedHeaders {
  const named = upstream.get("connection");
  const dropped = named ? new Set(named.split(",").map((n) => n.trim().toLowerCase())) : undefined;
  const all: Record<string, string | string[]> = upstream.toJSON();
  const pairs: Array<[string, string]> = [];
  let rateLimits = false;
  // Searched for the key at once, as scrubTokenFromHeaders does (see there); joined once at the end
  // rather than added to header by header, which made two strings a header.
  const searched: string[] = [];
  for (const name in all) {
    if (!rateLimits && name.includes("ratelimit")) rateLimits = true;
    if (HOP_BY_HOP.has(name) || KEYPOOL_HEADERS.has(name) || dropped?.has(name)) continue;
    const value = all[name]!;
    if (Array.isArray(value)) {
      for (const one of value) {
        pairs.push([name, one]);
        searched.push(name, one);
      }
    } else {
      pairs.push([name, value]);
      searched.push(name, value);
    }
  }
  const spellings = tokenSpellings(token);
  if (!spellings.test(searched.join("\n"))) return { pairs, rateLimits };
  const scrubbed: Array<[string, string]> = [];
  for (const [name, value] of pairs) {
    if (!spellings.test(name)) scrubbed.push([name, spellings.replace(value, REDACTED)]);
  }
  return { pairs: scrubbed, rateLimits };
}
