import { readCappedText } from "../capped-body";
import { parseRetryAfter } from "../pool/retry-after";
import type { HttpCheckConfig } from "../config/types";
import { deadline, type Deadline } from "./_deadline";
import type { ProbeOptions, ProbeResult } from "./probe";
import { scrubToken, substituteToken } from "./_token-text";

const MAX_REDIRECTS = 5;
/** How much of a probe's answer `success_body` is matched against; the rest is never read. */
export const MAX_PROBE_BODY_BYTES = 1024 * 1024;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const TLS_ERROR_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "CERT_HAS_EXPIRED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

type Sent = { response: Response } | { otherOrigin: string } | { tooManyRedirects: true };

export async function probeHttp(check: HttpCheckConfig, token: string, opts: ProbeOptions): Promise<ProbeResult> {
  const started = performance.now();
  const latencyMs = () => Math.round(performance.now() - started);
  const result = (ok: boolean, reason: string, extra: Partial<ProbeResult> = {}): ProbeResult => ({
    ok,
    ...extra,
    latencyMs: latencyMs(),
    reason: scrubToken(reason, token),
  });

  const matcher = check.successBody === undefined ? undefined : bodyMatcher(check.successBody);
  if (matcher instanceof Error) return result(false, matcher.message);

  const limit = deadline(check.timeoutSec, opts.signal);
  try {
    const sent = await sendFollowingSameOrigin(check, token, opts, limit.signal);
    if ("otherOrigin" in sent)
      return result(false, `redirected to another origin (${sent.otherOrigin}); token not sent`);
    if ("tooManyRedirects" in sent) return result(false, `more than ${MAX_REDIRECTS} redirects`);

    const { response } = sent;
    const extra = {
      status: response.status,
      retryAfterSec: parseRetryAfter(response.headers.get("retry-after"), Date.now()),
    };
    if (!check.successStatus.includes(response.status)) {
      await response.body?.cancel();
      return result(false, `HTTP ${response.status}`, extra);
    }
    if (!matcher) {
      await response.body?.cancel();
      return result(true, "ok", extra);
    }
    const { text } = await readCappedText(response, MAX_PROBE_BODY_BYTES);
    return matcher.test(text) ? result(true, "ok", extra) : result(false, matcher.failure, extra);
  } catch (error) {
    return result(false, describeFetchError(error, limit));
  }
}

/**
 * Follows redirects by hand so the token (in the URL, headers or body) only ever goes back to
 * the origin the operator configured: a redirect elsewhere is reported, never followed.
 */
async function sendFollowingSameOrigin(
  check: HttpCheckConfig,
  token: string,
  opts: ProbeOptions,
  signal: AbortSignal,
): Promise<Sent> {
  let url = new URL(substituteToken(check.url, encodeURIComponent(token)));
  let method = check.method.toUpperCase();
  let body = check.body === undefined ? undefined : substituteToken(check.body, token);
  const headers = Object.fromEntries(Object.entries(check.headers).map(([k, v]) => [k, substituteToken(v, token)]));
  const tls = check.insecure ? { rejectUnauthorized: false } : undefined;

  for (let hops = 0; ; hops++) {
    const response = await fetch(url, { method, headers, body, redirect: "manual", signal, proxy: opts.proxy, tls });
    const location = REDIRECT_STATUSES.has(response.status) ? response.headers.get("location") : null;
    if (location === null) return { response };
    await response.body?.cancel();
    if (hops === MAX_REDIRECTS) return { tooManyRedirects: true };
    const next = new URL(location, url);
    if (next.origin !== url.origin) return { otherOrigin: next.origin };
    // What browsers do: 303 always, and 301/302 after a POST, continue as a GET without a body.
    if (response.status === 303 ? method !== "HEAD" : response.status <= 302 && method === "POST") {
      method = "GET";
      body = undefined;
    }
    url = next;
  }
}

interface BodyMatcher {
  test(body: string): boolean;
  failure: string;
}

/** `success_body` is a substring, or a regular expression written `/pattern/flags`. */
function bodyMatcher(spec: string): BodyMatcher | Error {
  const literal = /^\/(.+)\/([a-z]*)$/s.exec(spec);
  if (!literal) return { test: (body) => body.includes(spec), failure: `body did not contain ${JSON.stringify(spec)}` };
  try {
    const re = new RegExp(literal[1]!, literal[2]);
    return { test: (body) => re.test(body), failure: `body did not match ${spec}` };
  } catch {
    return new Error(`success_body ${spec} is not a valid regular expression`);
  }
}

function describeFetchError(error: unknown, limit: Deadline): string {
  const why = limit.why();
  if (why === "timeout") return limit.timeoutReason;
  if (why === "aborted") return "aborted";
  const { code, message } = error as { code?: string; message?: string };
  if (code === "ECONNREFUSED" || code === "ConnectionRefused") return "connection refused";
  if (code === "ECONNRESET" || code === "ConnectionClosed") return "connection reset by upstream";
  if (code === "ENOTFOUND") return `host not found: ${message?.split(" ").pop() ?? "?"}`;
  if (code && TLS_ERROR_CODES.has(code))
    return `TLS certificate rejected (${code}); set insecure: true only for a test upstream`;
  return message ?? String(error);
}
