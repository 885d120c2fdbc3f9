import { hostname } from "node:os";
import { readCappedText } from "../capped-body";
import { isSendableToken } from "../pool/token-rules";
import type { RefreshConfig } from "../config/types";
import type { Clock } from "../pool/clock";
import { MAX_TOKEN_LIFETIME_SEC } from "../pool/bounds";
import type { PoolStore, RefreshResult } from "../store/types";
import { deadline } from "./_deadline";
import { describeRefreshFailure, fieldAt, substituteCredentials } from "./_refresh-text";
import { scrubToken } from "./_token-text";

export const DEFAULT_REFRESH_AHEAD_SEC = 60;
/** The token endpoint's own time limit; it is not the API being probed, so check.timeout_sec does not apply. */
export const REFRESH_TIMEOUT_SEC = 30;
// The lock outlives the request by this much, so a slow store write after the answer cannot let a second refresher in.
const LOCK_MARGIN_SEC = 60;
/** A token endpoint's answer is a small JSON object; past this it is not one, and the rest is never read. */
export const MAX_TOKEN_ANSWER_BYTES = 64 * 1024;

export interface Credentials {
  token: string;
  refreshToken: string | null;
}

/** What the token endpoint answered. `reason` is short and never contains a token. */
export type TokenAnswer =
  | { ok: true; token: string; refreshToken?: string; expiresInSec?: number }
  | { ok: false; reason: string };

export interface RefreshRequestOptions {
  proxy?: string;
  signal?: AbortSignal;
  timeoutSec?: number;
}

/**
 * Asks the token endpoint for a new token. Never throws: every failure is an answer with a reason,
 * scrubbed of the old token and the refresh token.
 */
export async function requestNewToken(
  refresh: RefreshConfig,
  credentials: Credentials,
  opts: RefreshRequestOptions = {},
): Promise<TokenAnswer> {
  const fail = (reason: string): TokenAnswer => ({ ok: false, reason: scrubAll(reason, credentials) });
  const usesRefreshToken = [refresh.url, refresh.body ?? "", ...Object.values(refresh.headers)].some((t) =>
    t.includes("{refresh_token}"),
  );
  if (usesRefreshToken && credentials.refreshToken === null) {
    return fail("no refresh token known for this key — add refresh_token=VALUE to its line in the tokens file");
  }

  const timeoutSec = opts.timeoutSec ?? REFRESH_TIMEOUT_SEC;
  const limit = deadline(timeoutSec, opts.signal);
  let response: Response;
  try {
    response = await fetch(substituteCredentials(refresh.url, credentials, "url"), {
      method: refresh.method,
      headers: Object.fromEntries(
        Object.entries(refresh.headers).map(([k, v]) => [k, substituteCredentials(v, credentials, "raw")]),
      ),
      body:
        refresh.body === undefined
          ? undefined
          : substituteCredentials(refresh.body, credentials, bodyEncoding(refresh.headers)),
      // A token endpoint that redirects is misconfigured; following it would send the refresh token elsewhere.
      redirect: "manual",
      signal: limit.signal,
      proxy: opts.proxy,
    });
  } catch (error) {
    const why = limit.why();
    if (why === "timeout") return fail(`token endpoint: ${limit.timeoutReason}`);
    if (why === "aborted") return fail("aborted");
    return fail(`token request failed: ${(error as Error).message ?? String(error)}`);
  }

  let text: string;
  try {
    const answer = await readCappedText(response, MAX_TOKEN_ANSWER_BYTES);
    if (answer.truncated) {
      return fail(
        `token endpoint answered HTTP ${response.status} with more than ${MAX_TOKEN_ANSWER_BYTES} bytes; not a token answer`,
      );
    }
    text = answer.text;
  } catch {
    return fail(limit.why() === "aborted" ? "aborted" : `token endpoint: ${limit.timeoutReason}`);
  }
  if (response.status < 200 || response.status > 299) return fail(describeRefreshFailure(response.status, text));

  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return fail(`token endpoint answered HTTP ${response.status} without a JSON body`);
  }
  const token = fieldAt(body, refresh.tokenField);
  // The body is never quoted in these reasons: it holds the new token.
  if (typeof token !== "string" || token === "")
    return fail(`token endpoint's answer has no string field "${refresh.tokenField}" — check refresh.token_field`);
  // Stored, it would make every request with the key fail: keep the old token instead.
  if (!isSendableToken(token))
    return fail(
      `token endpoint's "${refresh.tokenField}" has whitespace, control or non-ASCII characters, which an HTTP header cannot carry`,
    );

  const answer: TokenAnswer = { ok: true, token };
  if (refresh.refreshTokenField !== undefined) {
    const next = fieldAt(body, refresh.refreshTokenField);
    if (typeof next === "string" && next !== "") answer.refreshToken = next;
  }
  if (refresh.expiresInField !== undefined) {
    const seconds = Number(fieldAt(body, refresh.expiresInField));
    if (Number.isFinite(seconds) && seconds > 0) answer.expiresInSec = Math.min(seconds, MAX_TOKEN_LIFETIME_SEC);
  }
  return answer;
}

/** A refresher's identity in the store's lock: unique per process and per checker. */
export function refreshOwnerId(): string {
  return `${hostname()}/${process.pid}/${crypto.randomUUID().slice(0, 8)}`;
}

export interface RefreshDeps {
  store: PoolStore;
  clock: Clock;
  /** From refreshOwnerId(). */
  owner: string;
}

export interface RefreshTarget {
  pool: string;
  id: string;
  /** The token the caller found expired or rejected. */
  staleToken: string;
}

export type RefreshOutcome =
  | { status: "refreshed"; token: string }
  /** Someone else replaced the token first: use this one. */
  | { status: "superseded"; token: string }
  /** Someone else is refreshing the key right now. */
  | { status: "busy" }
  /** The key is now quarantined with this reason. */
  | { status: "failed"; reason: string }
  | { status: "aborted" }
  | { status: "missing" };

/**
 * Refreshes one key's token, single-flight: the store's lock lets one refresher per key through,
 * across processes, and only while the key still holds `staleToken` — so a single-use refresh
 * token is spent once, and a refresher that lost the race gets the winner's token instead.
 */
export async function refreshKey(
  deps: RefreshDeps,
  target: RefreshTarget,
  refresh: RefreshConfig,
  opts: RefreshRequestOptions = {},
): Promise<RefreshOutcome> {
  const { store, clock, owner } = deps;
  const timeoutSec = opts.timeoutSec ?? REFRESH_TIMEOUT_SEC;
  const lockUntil = clock.now() + (timeoutSec + LOCK_MARGIN_SEC) * 1000;
  const claim = await store.beginRefresh(target.pool, target.id, { owner, staleToken: target.staleToken, lockUntil });
  if (claim.status !== "claimed") return claim;

  let result: RefreshResult = { status: "abandoned" };
  let applied = false;
  try {
    const answer = await requestNewToken(refresh, claim, { ...opts, timeoutSec });
    if (opts.signal?.aborted) {
      // Shutting down: whether the endpoint spent the refresh token is unknown, so nothing is concluded.
      result = { status: "abandoned" };
    } else if (answer.ok) {
      const expiresAt = answer.expiresInSec === undefined ? undefined : clock.now() + answer.expiresInSec * 1000;
      result = { status: "refreshed", token: answer.token, refreshToken: answer.refreshToken, expiresAt };
    } else {
      result = { status: "failed", reason: `token refresh failed: ${answer.reason}` };
    }
  } finally {
    applied = await store.finishRefresh(target.pool, target.id, owner, result);
  }
  // Not applied: the lock lapsed or a new tokens file replaced the credential meanwhile; what we got is moot.
  if (!applied) return { status: "aborted" };
  if (result.status === "refreshed") return { status: "refreshed", token: result.token };
  if (result.status === "failed") return { status: "failed", reason: result.reason };
  return { status: "aborted" };
}

function bodyEncoding(headers: Record<string, string>): "json" | "form" | "raw" {
  const type =
    Object.entries(headers)
      .find(([k]) => k.toLowerCase() === "content-type")?.[1]
      ?.toLowerCase() ?? "";
  if (type.includes("json")) return "json";
  if (type.includes("x-www-form-urlencoded")) return "form";
  return "raw";
}

function scrubAll(text: string, credentials: Credentials): string {
  const once = scrubToken(text, credentials.token);
  return credentials.refreshToken === null ? once : scrubToken(once, credentials.refreshToken);
}
