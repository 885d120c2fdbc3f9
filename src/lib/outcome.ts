import { type FailureClass, MAX_ERROR_BODY } from "../pool/classify";
import type { TokenCounts } from "../pool/pricing";
import { retryAfterMs } from "../pool/retry-after";

/** How a use of a key went, as a library caller reports it. */
export interface ReportedOutcome {
  ok: boolean;
  /** The upstream's HTTP status: 429 rests the key, 401/403 quarantine it, 5xx rest it. */
  status?: number;
  /** How long the upstream asked to wait before the next request with this key. */
  retryAfterMs?: number;
  /** A failure without a status: "timeout" or "network". */
  error?: string;
  /**
   * The upstream's error text (its first 4 KB are read): it tells an exhausted quota sent as 429
   * ("insufficient_quota", "exceeded your current quota") from a rate limit, as in `POST /release`.
   */
  body?: string;
  /** Your own verdict on the failure; wins over classification (e.g. "quota" for a billing error). */
  class?: FailureClass;
  /** What the upstream's `usage` said the request used: counted for the key, and priced by `model` from the config's `prices`. */
  usage?: TokenCounts;
  /**
   * The model the request called (the name sent upstream): prices `usage`, and scopes the outcome to the
   * (key, model) pair — a rate limit rests only that model on the key, and an answer saying the key cannot
   * use the model (`result.modelDenied`) keeps the key out of that model's takes for a long rest.
   */
  model?: string;
}

/**
 * What a thrown error says about the key. HTTP client errors carry the status as `status`
 * (openai, @anthropic-ai/sdk), `statusCode`, or `response.status` (axios, ky, fetch wrappers);
 * an error without one is a transport failure.
 */
export function outcomeOfError(error: unknown, now: number): ReportedOutcome {
  // biome-ignore lint/suspicious/noExplicitAny: whatever an SDK threw; each field read is checked before use
  const e = (typeof error === "object" && error !== null ? error : {}) as Record<string, any>;
  const status = [e.status, e.statusCode, e.response?.status].find(
    (s) => Number.isInteger(s) && s >= 100 && s <= 599,
  ) as number | undefined;
  if (status === undefined) {
    const message = typeof e.message === "string" ? e.message : "";
    // A timeout made with an AbortController says so in its message; any other abort is the
    // caller giving up, which says nothing about the key (class "client" costs it nothing).
    if (e.name === "AbortError" && !/time ?out|timed out/i.test(message)) return { ok: false, class: "client" };
    const timedOut = ["TimeoutError", "AbortError"].includes(e.name) || ["ETIMEDOUT", "ECONNABORTED"].includes(e.code);
    return { ok: false, error: timedOut ? "timeout" : "network" };
  }
  const outcome = outcomeOfStatus(status, headersOf(e.headers ?? e.response?.headers), now);
  // SDKs put the upstream's error text in the message (openai: "429 You exceeded your current quota…").
  if (outcome.ok || typeof e.message !== "string" || e.message === "") return outcome;
  return { ...outcome, body: e.message.slice(0, MAX_ERROR_BODY) };
}

/** What a returned value says: a `Response` by its status, anything else is a success. */
export function outcomeOfValue(value: unknown, now: number): ReportedOutcome {
  if (value instanceof Response) return outcomeOfStatus(value.status, value.headers, now);
  return { ok: true };
}

function outcomeOfStatus(
  status: number,
  headers: { get(name: string): string | null } | undefined,
  now: number,
): ReportedOutcome {
  // Every failure goes to the store, which classifies it with the pool's rules as for `POST /release`:
  // a 402 is a spent quota, a 400 naming an invalid key an auth failure, any other 400 the request's
  // own fault (class "client"), which costs the key nothing.
  if (status < 400) return { ok: true, status };
  const wait = headers ? retryAfterMs(headers, now) : undefined;
  return wait === undefined ? { ok: false, status } : { ok: false, status, retryAfterMs: wait };
}

/** Headers as a `Headers` or a plain record (older SDKs), behind one `get`. */
function headersOf(value: unknown): { get(name: string): string | null } | undefined {
  if (value instanceof Headers) return value;
  if (typeof value !== "object" || value === null) return undefined;
  const lower = new Map(
    Object.entries(value).map(([k, v]) => [k.toLowerCase(), Array.isArray(v) ? String(v[0]) : String(v)]),
  );
  return { get: (name) => lower.get(name.toLowerCase()) ?? null };
}
