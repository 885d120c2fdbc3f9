import type { Server } from "bun";
import { type Logger, REQUEST_ID_HEADER, errorFields, loggedPath, newRequestId } from "../log";
import { type MetricsRecorder, noMetrics } from "../metrics/metrics";
import { createUsageMeter } from "../metrics/usage-meter";
import type { Clock } from "../pool/clock";
import { DomainError } from "../pool/errors";
import type { Outcome } from "../pool/key-state";
import { MAX_ERROR_BODY } from "../pool/classify";
import { parseRateLimitHeaders } from "../pool/rate-limit-headers";
import { retryAfterMs } from "../pool/retry-after";
import { scrubSecrets } from "../pool/scrub-secrets";
import { createSecretMatcher, presentedCredential } from "../pool/secret-match";
import { sessionIdOf } from "../pool/session";
import { TakeQueue } from "../broker/take-queue";
import type { Lease, PoolStore } from "../store/types";
import { clientResponseHeaders, relayedHeaders, upstreamRequestHeaders } from "./_headers";
import { relayBody } from "./_relay";
import { scrubTokenFromBody, scrubTokenFromText } from "./_scrub-token";
import { RetryBudget, isUpstreamSideFailure } from "./retry-budget";
import { concat, readCapped } from "../capped-body";
import { DEFAULT_IDLE_TIMEOUT_SEC } from "../config/types";
import { gatewayError } from "./errors";
import { CacheHitCounter, gatewayHealth } from "./health-report";
import { modelsByPool } from "./request-model";
import { type GatewayRoute, type GatewayTarget, bodyFor, jsonBodyOf, matchRoute, modelIn, targetOf } from "./route";

export interface GatewayDeps {
  store: PoolStore;
  routes: GatewayRoute[];
  clock: Clock;
  logger: Logger;
  metrics?: MetricsRecorder;
  /** Waiting (upstream.queue_timeout_sec) and fallback pools; the daemon shares one with the broker. */
  keys?: TakeQueue;
  /** Retry budgets by pool; the listeners pass one map so a reload keeps what the last 10 s spent. */
  retryBudgets?: Map<string, RetryBudget>;
  /** Cache hits by key for GET /health; the listeners pass one so a reload keeps the counts. */
  cacheHits?: CacheHitCounter;
  /** The listener's idle timeout, restored on a client's connection once its answer is complete. */
  idleTimeoutSec?: number;
}

/** upstream.retry_budget when unset: retries after upstream-side failures stay under 20% of requests. */
export const DEFAULT_RETRY_BUDGET = 0.2;

const CLIENT_KEY_MESSAGE = "missing or wrong client key: send one of upstream.client_keys as Bearer or x-api-key";
/**
 * Methods never sent upstream: a TRACE is echoed back by the upstream with every header it got —
 * the injected key among them — and CONNECT asks for a tunnel, which a gateway that injects keys
 * into requests cannot be.
 */
const NOT_FORWARDED = new Set(["TRACE", "TRACK", "CONNECT"]);

/** How much of an upstream error body goes into the log (scrubbed of anything credential-like). */
const MAX_LOGGED_ERROR_BODY = 500;

/**
 * How much of an upstream error body is read: what the client gets (a retried one is kept this size
 * in case no other key is free), and the most a compressed one is decompressed to, to be scrubbed.
 * The rest is never read: the upstream connection is closed instead.
 */
export const MAX_KEPT_ERROR_BODY = 256 * 1024;

/** The request's id, and whether a log line already carries it. */
interface RequestTrace {
  readonly id: string;
  logged: boolean;
}

type Attempt =
  /** `buffered`: a failure read whole (and scrubbed), so its body can be judged and still be answered. */
  | { kind: "response"; response: Response; lease: Lease; firstByteSec: number; buffered: boolean }
  | { kind: "transport"; error: string; lease: Lease };

/**
 * The reverse proxy: take a key → inject it → forward → classify → retry on another key or stream
 * the answer back. Returns a `fetch` handler for Bun.serve; knows nothing about listeners.
 */
export function createGateway(deps: GatewayDeps) {
  const { store, routes, clock, logger } = deps;
  const keys = deps.keys ?? new TakeQueue({ store, clock });
  const metrics = deps.metrics ?? noMetrics;
  const clientKeyChecks = new Map(routes.map((r) => [r.pool, clientKeyCheck(r.upstream.clientKeys)]));
  // Each route's pool and its fallbacks, in order: built once, not per request.
  const chains = new Map(routes.map((r) => [r, [r.pool, ...r.fallbacks.map((f) => f.pool)]]));
  const maxBodyBytes = Math.max(...routes.map((r) => r.upstream.maxBodyBytes));
  const budgets = deps.retryBudgets ?? new Map<string, RetryBudget>();
  const cacheHits = deps.cacheHits ?? new CacheHitCounter();
  const budgetOf = (route: GatewayRoute): RetryBudget => {
    const ratio = route.upstream.retryBudget ?? DEFAULT_RETRY_BUDGET;
    let budget = budgets.get(route.pool);
    if (budget?.ratio !== ratio) budgets.set(route.pool, (budget = new RetryBudget(ratio, clock)));
    return budget;
  };

  const idleTimeoutSec = deps.idleTimeoutSec ?? DEFAULT_IDLE_TIMEOUT_SEC;

  /**
   * Every answer carries the request id of its log line. An answer keypool refused without
   * forwarding (no pool, too large, wrong client key) is logged here; a failure of keypool's own is
   * logged with its stack and answered with a bare 500 that names the id.
   *
   * While keypool waits (for a key, for the upstream's answer, between a stream's events) the client's
   * connection is quiet through no fault of the client's: `forward` turns its idle timeout off once the
   * request is accepted, and it is back on once the answer is complete, so that the connection, kept
   * alive after it, is reaped when idle (Bun keeps a timeout set for a request on its connection).
   */
  return async function handleGatewayRequest(request: Request, server: Server<unknown>): Promise<Response> {
    const trace: RequestTrace = { id: newRequestId(), logged: false };
    let resumeLater = false;
    const resumeIdleTimeout = () => {
      try {
        server.timeout(request, idleTimeoutSec);
      } catch {
        // The connection is already gone.
      }
    };
    const held = () => {
      resumeLater = true;
      return resumeIdleTimeout;
    };
    let response: Response;
    try {
      response = await forward(request, server, trace, held);
    } catch (error) {
      const fields = { request_id: trace.id, method: request.method, path: loggedPath(request.url) };
      logger.error("gateway request failed", { ...fields, ...errorFields(error) });
      trace.logged = true;
      const message = `keypool failed to handle this request; the keypool log has the details under ${trace.id}`;
      response = gatewayError(500, "internal_error", message);
    } finally {
      if (!resumeLater) resumeIdleTimeout();
    }
    // A monitor polling GET /health is answered, not refused: no line per poll.
    if (!trace.logged && response.status >= 400) {
      const fields = { request_id: trace.id, method: request.method, path: loggedPath(request.url) };
      logger.info("gateway request refused", { ...fields, status: response.status });
    }
    response.headers.set(REQUEST_ID_HEADER, trace.id);
    return response;
  };

  /** `holdIdleTimeout` tells the caller a streamed answer will resume the idle timeout itself, when it ends. */
  async function forward(
    request: Request,
    server: Server<unknown>,
    trace: RequestTrace,
    holdIdleTimeout: () => () => void,
  ): Promise<Response> {
    const started = performance.now();
    if (NOT_FORWARDED.has(request.method)) {
      const allow = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
      const message = `the gateway does not forward ${request.method} requests`;
      return gatewayError(405, "method_not_allowed", message, { allow });
    }
    const url = parseUrl(request.url);
    if (!url) {
      const message = "the request's URL cannot be read: an HTTP/1.0 request needs a Host header";
      return gatewayError(400, "invalid_request", message);
    }
    if (request.method === "GET" && url.pathname === "/health") return answerHealth(request.headers);

    const body = await readBody(request, maxBodyBytes);
    if (body === "too-large") {
      return gatewayError(413, "payload_too_large", `request body is larger than ${maxBodyBytes} bytes`, {
        connection: "close",
      });
    }
    const json = jsonBodyOf(body);
    const match = matchRoute(routes, url.pathname, modelIn(json));
    if (!match) {
      const prefixes = routes.map((r) => r.prefix).join(", ");
      return gatewayError(
        404,
        "no_pool_for_request",
        `no pool serves this request: use a path prefix (${prefixes}) or a model a pool lists`,
      );
    }
    const { route } = match;
    if (body && body.length > route.upstream.maxBodyBytes) {
      return gatewayError(413, "payload_too_large", `request body is larger than ${route.upstream.maxBodyBytes} bytes`);
    }
    if (!clientKeyChecks.get(route.pool)!(request.headers)) {
      return gatewayError(401, "invalid_client_key", CLIENT_KEY_MESSAGE);
    }
    // Off until the answer is complete (see handleGatewayRequest).
    server.timeout(request, 0);

    const log = (status: number, attempts: number, keyId: string | undefined, extra?: Record<string, unknown>) => {
      trace.logged = true;
      const fields: Record<string, unknown> = {
        request_id: trace.id,
        pool: route.pool,
        key: keyId,
        method: request.method,
        path: match.path,
        status,
        attempts,
        duration_ms: Math.round(performance.now() - started),
      };
      // A line per request: most have nothing extra to copy in.
      logger.info("gateway request", extra === undefined ? fields : Object.assign(fields, extra));
    };

    const maxAttempts = 1 + route.upstream.maxRetries;
    const budget = budgetOf(route);
    budget.recordRequest();
    // A key-specific failure (401, 403, 429) rests that key, so moving on to another costs nothing
    // extra; a 5xx or a transport failure may be the whole upstream struggling: that retry is budgeted.
    let budgetSpent = false;
    const mayRetry = (status: number | undefined): boolean => {
      if (!isUpstreamSideFailure(status) || budget.tryRetry()) return true;
      budgetSpent = true;
      return false;
    };
    // Key ids already tried, by pool: a retry lands on another key, in the route's pool or a fallback.
    const tried: Record<string, string[]> = {};
    const pools = chains.get(route)!;
    const session = stickySession(route, request.headers, json);
    // Rests and denials of one model leave the key's other models alone; a request naming none takes as before.
    const modelOf = modelsByPool(route, match.path, json);
    const queueMs = (route.upstream.queueTimeoutSec ?? 0) * 1000;
    let lastFailure: { response: Response; keyId: string } | undefined;
    let lastTransportError: string | undefined;
    // Every attempt failed: the last upstream answer if there was one, else why none came.
    // `freeInMs`: when the pool ran out of keys, how long until its first key is usable again.
    const giveUp = (attempts: number, freeInMs?: number): Response => {
      if (lastFailure) {
        log(lastFailure.response.status, attempts, lastFailure.keyId, budgetSpent ? { retry_budget_spent: true } : {});
        const response = withKeypoolHeaders(lastFailure.response, lastFailure.keyId, attempts);
        // The last key's own Retry-After says when *that* key is back; the pool's says when any is,
        // which is what the client needs to know (every key tried answered 429 or 503).
        if (freeInMs !== undefined && (response.status === 429 || response.status === 503)) {
          response.headers.set("retry-after", String(Math.max(1, Math.ceil(freeInMs / 1000))));
        }
        return response;
      }
      log(502, attempts, undefined, { reason: lastTransportError, ...(budgetSpent && { retry_budget_spent: true }) });
      return gatewayError(
        502,
        "upstream_unreachable",
        `the upstream could not be reached after ${attempts} attempts: ${lastTransportError}`,
      );
    };

    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      let lease: Lease;
      try {
        // Only the first attempt waits in line: a retry has an answer to fall back on.
        lease = await keys.take(route.pool, {
          pools,
          session,
          exclude: tried,
          waitMs: attempt === 1 ? queueMs : 0,
          signal: request.signal,
          modelIn: modelOf,
        });
      } catch (error) {
        if (request.signal.aborted) {
          log(499, attempt - 1, undefined, { reason: "client closed the request while waiting for a key" });
          return gatewayError(499, "client_closed_request", "the client went away");
        }
        if (error instanceof DomainError && error.code === "STORE_UNAVAILABLE") {
          log(503, attempt - 1, undefined, { reason: "store unavailable" });
          return gatewayError(503, "store_unavailable", error.message, {
            "retry-after": String(Math.max(1, Math.ceil((error.retryAfterMs ?? 1000) / 1000))),
          });
        }
        if (error instanceof DomainError && error.code === "STATE_FILE_LOST") {
          log(503, attempt - 1, undefined, { reason: "state file lost" });
          return gatewayError(503, "state_file_lost", error.message);
        }
        if (error instanceof DomainError && error.code === "BUDGET_EXHAUSTED") {
          // Answered as a 503 whatever came before: no key of any pool in the chain may spend more now.
          log(503, attempt - 1, undefined, { reason: "budget exhausted" });
          return gatewayError(503, "budget_exhausted", error.message, {
            "retry-after": String(Math.max(1, Math.ceil((error.retryAfterMs ?? 1000) / 1000))),
          });
        }
        if (!(error instanceof DomainError) || error.code !== "NO_KEY_AVAILABLE") throw error;
        metrics.recordTake(route.pool, "no_key");
        // Keys ran out after failed attempts (fewer keys than attempts): report those, not a 503.
        if (lastFailure || lastTransportError) return giveUp(attempt - 1, error.retryAfterMs);
        const seconds = String(Math.max(1, Math.ceil((error.retryAfterMs ?? 1000) / 1000)));
        log(503, attempt - 1, undefined, { reason: "no key available" });
        return gatewayError(503, "no_key_available", error.message, { "retry-after": seconds });
      }
      (tried[lease.pool] ??= []).push(lease.id);
      metrics.recordTake(lease.pool, "ok");
      if (attempt > 1) metrics.recordRetry(route.pool);
      const target = targetOf(route, lease.pool);
      const sent = bodyFor(target, body, json);
      const model = modelOf?.(lease.pool);

      const sentAt = performance.now();
      const result = await attemptOnce(request, match.path + url.search, sent.body, lease, target, model);
      if (result.kind === "transport") {
        if (request.signal.aborted) {
          // The client left before the answer: that says nothing about the key, so no penalty
          // (released as a client-side 4xx is), and no retry, with no one left to answer.
          await keys.release({ lease: lease.lease }, { ok: false, class: "client", model });
          log(499, attempt, lease.id, { reason: "client closed the request" });
          return gatewayError(499, "client_closed_request", "the client went away");
        }
        await keys.release({ lease: lease.lease }, { ok: false, error: result.error, model });
        metrics.recordRequest(lease.pool, lease.id, { ok: false, error: result.error });
        lastTransportError = `${result.error} (key ${lease.id})`;
        if (attempt < maxAttempts && !mayRetry(undefined)) return giveUp(attempt);
        continue;
      }

      const { response } = result;
      const relayed = relayedHeaders(response.headers, lease.token);
      const { rateLimits } = relayed;
      // Only an answer that may be retried was buffered; one streamed to the client is judged by its status.
      const errorBody =
        result.buffered && response.status >= 400
          ? (await response.clone().text()).slice(0, MAX_ERROR_BODY)
          : undefined;
      // The model prices the usage the answer reports and scopes a failure to the (key, model) pair.
      const outcome = outcomeOf(response, errorBody, target, clock.now(), rateLimits, model);
      metrics.observeUpstream(lease.pool, "first_byte", result.firstByteSec);
      if (rateLimits) metrics.recordRateLimits(lease.pool, lease.id, response.headers);
      // An answer that names a model may say this key cannot use it: only the store can tell (by the
      // pool's rules), so the release comes first, and a denial is retried on another key as a 429 is.
      const released = result.buffered && !outcome.ok ? await keys.release({ lease: lease.lease }, outcome) : undefined;
      if (released && (released.modelDenied || target.upstream.retryOn.includes(response.status))) {
        metrics.recordRequest(lease.pool, lease.id, outcome);
        metrics.observeUpstream(lease.pool, "total", (performance.now() - sentAt) / 1000);
        logger.warn("upstream attempt failed", {
          request_id: trace.id,
          pool: lease.pool,
          key: lease.id,
          attempt,
          status: response.status,
          ...(released.modelDenied && { model, model_denied: true }),
          body: scrubSecrets((await response.clone().text()).slice(0, MAX_LOGGED_ERROR_BODY), [lease.token]),
        });
        // Already buffered by attemptOnce, so it can still be answered if no other key is free.
        lastFailure = { response, keyId: lease.id };
        if (attempt < maxAttempts && mayRetry(response.status)) continue;
        return giveUp(attempt);
      }

      // From here the answer is the client's: never retried once a byte of it may have been sent.
      log(response.status, attempt, lease.id);
      cacheHits.record(lease.pool, lease.id, response.headers);
      // The session's totals get the usage too.
      const relayedOutcome = session === undefined ? outcome : { ...outcome, session };
      const alreadyReleased = released !== undefined;
      return streamBack(
        response,
        relayed.pairs,
        lease,
        attempt,
        relayedOutcome,
        sentAt,
        holdIdleTimeout,
        alreadyReleased,
      );
    }

    return giveUp(maxAttempts);
  }

  /** Key stats for monitors; behind the client keys when any route has them, like every other path. */
  async function answerHealth(headers: Headers): Promise<Response> {
    const guarded = routes.filter((r) => r.upstream.clientKeys?.length);
    if (guarded.length > 0 && !guarded.some((r) => clientKeyChecks.get(r.pool)!(headers))) {
      return gatewayError(401, "invalid_client_key", CLIENT_KEY_MESSAGE);
    }
    let report: Awaited<ReturnType<typeof gatewayHealth>>;
    try {
      report = await gatewayHealth(store, routes, cacheHits);
    } catch (error) {
      if (!(error instanceof DomainError) || error.code !== "STORE_UNAVAILABLE") throw error;
      return gatewayError(503, "store_unavailable", error.message, { "retry-after": "1" });
    }
    return new Response(`${JSON.stringify(report, null, 2)}\n`, { headers: { "content-type": "application/json" } });
  }

  /**
   * Sends the upstream response to the client as it arrives, with `headers` (relayedHeaders' pairs); the
   * lease is released when it ends, unless `releasedAlready` (an error answer the store had to judge
   * before it could be relayed).
   */
  function streamBack(
    response: Response,
    headers: Array<[string, string]>,
    lease: Lease,
    attempts: number,
    outcome: Outcome,
    sentAt: number,
    holdIdleTimeout: () => () => void,
    releasedAlready = false,
  ): Response | Promise<Response> {
    let released = false;
    // Token usage is read from successful answers as they pass, for the store's usage ledger and the metrics.
    const usage = response.status < 400 ? createUsageMeter(response.headers.get("content-type")) : undefined;
    const release = (how: Outcome) => {
      if (released) return;
      released = true;
      metrics.recordRequest(lease.pool, lease.id, how);
      metrics.observeUpstream(lease.pool, "total", (performance.now() - sentAt) / 1000);
      const used = how.ok ? usage?.finish() : undefined;
      if (used) metrics.recordTokens(lease.pool, lease.id, used);
      if (releasedAlready) return;
      keys
        .release({ lease: lease.lease }, used ? { ...how, usage: used } : how)
        .catch((error) => logger.warn("release failed", { key: lease.id, error: String(error) }));
    };
    const statusText = scrubTokenFromText(response.statusText, lease.token);
    headers.push(["x-keypool-key", lease.id], ["x-keypool-pool", lease.pool], ["x-keypool-attempts", String(attempts)]);
    if (!response.body) {
      release(outcome);
      return new Response(null, { status: response.status, statusText, headers });
    }
    const brokenOff = () => {
      logger.warn("upstream broke off a response mid-body", { pool: lease.pool, key: lease.id });
      release({ ok: false, error: "body interrupted", model: outcome.model });
      return gatewayError(502, "upstream_body_interrupted", "the upstream broke off its answer");
    };
    // Error answers are read (up to a cap, the rest cut off) so a key the upstream quotes back can be masked.
    if (response.status >= 400) {
      return readCapped(response.body, MAX_KEPT_ERROR_BODY).then(async ({ bytes }) => {
        release(outcome);
        const errorHeaders = new Headers(headers);
        errorHeaders.delete("content-length");
        const body = await scrubTokenFromBody(bytes, errorHeaders, lease.token, MAX_KEPT_ERROR_BODY);
        return new Response(body, { status: response.status, statusText, headers: errorHeaders });
      }, brokenOff);
    }
    if (isSmallWholeBody(response)) {
      // A plain answer of known, modest size is read natively in one go: relaying it chunk by chunk
      // through a JS stream costs more than the request's own bookkeeping. Streams (SSE, chunked)
      // always take the relay below.
      return response.bytes().then((bytes) => {
        usage?.push(bytes);
        release(outcome);
        return new Response(bytes, { status: response.status, statusText, headers });
      }, brokenOff);
    }
    const resumeIdleTimeout = holdIdleTimeout();
    const body = relayBody(response.body, {
      onChunk: usage && ((chunk) => usage.push(chunk)),
      onComplete: () => {
        resumeIdleTimeout();
        release(outcome);
      },
      // A stream cut by the upstream is the key's failure; one the client walked away from is not.
      onUpstreamError: () => {
        resumeIdleTimeout();
        logger.warn("upstream broke off a response mid-stream", { pool: lease.pool, key: lease.id });
        release({ ok: false, error: "stream interrupted", model: outcome.model });
      },
      onClientCancel: () => release(outcome),
    });
    return new Response(body, { status: response.status, statusText, headers });
  }
}

/** Bodies read whole instead of relayed: a declared length up to this, and not an event stream. */
const MAX_WHOLE_BODY_BYTES = 1024 * 1024;

function isSmallWholeBody(response: Response): boolean {
  const length = Number(response.headers.get("content-length") ?? Number.NaN);
  return (
    Number.isInteger(length) &&
    length <= MAX_WHOLE_BODY_BYTES &&
    !response.headers.get("content-type")?.includes("event-stream")
  );
}

/**
 * One try with one key. The time limit covers only the wait for the response headers. `model`: the
 * model the request names, whose failures may say the key cannot use it.
 */
async function attemptOnce(
  request: Request,
  pathAndQuery: string,
  body: Uint8Array | undefined,
  lease: Lease,
  route: GatewayTarget,
  model: string | undefined,
): Promise<Attempt> {
  const { upstream } = route;
  // fetch takes the string as is; a URL object is built only when the key goes into the query.
  let target: string | URL = joinPath(upstream.baseUrl!, pathAndQuery);
  if (upstream.authQuery) {
    target = new URL(target);
    target.searchParams.delete(upstream.authQuery);
    target.searchParams.set(upstream.authQuery, lease.token);
  }
  let headers: Headers;
  try {
    headers = upstreamRequestHeaders(request.headers, {
      authHeader: upstream.authQuery ? undefined : upstream.authHeader,
      authValue: upstream.authQuery ? undefined : upstream.authTemplate.replaceAll("{token}", lease.token),
      extra: upstream.forwardHeaders,
    });
  } catch {
    // A token no header can carry (stored before tokens were checked): a failure of this key, not a
    // crash of the request that would leave its lease held.
    return { kind: "transport", error: "the key's token has characters an HTTP header cannot carry", lease };
  }

  // Aborted when the client disconnects (for the whole exchange) or when the first byte is late.
  const controller = new AbortController();
  const onClientGone = () => controller.abort(new DOMException("client closed the request", "AbortError"));
  request.signal.addEventListener("abort", onClientGone, { once: true });
  const firstByteTimer = setTimeout(
    () => controller.abort(new DOMException("timeout", "TimeoutError")),
    upstream.timeoutSec * 1000,
  );
  const sentAt = performance.now();
  try {
    const response = await fetch(target, {
      method: request.method,
      headers,
      body: body && body.length > 0 ? body : undefined,
      redirect: "manual",
      signal: controller.signal,
      // Compressed bodies pass through untouched, with their Content-Encoding.
      decompress: false,
    });
    // A status a Response cannot carry (600+, 1xx past fetch) is a broken upstream, not an answer to relay.
    if (response.status < 200 || response.status > 599) {
      void response.body?.cancel().catch(() => {});
      const error = `the upstream answered with status ${response.status}, which HTTP does not allow`;
      return { kind: "transport", error, lease };
    }
    // A failure that may be retried is read whole within the same time limit: its body is kept
    // for the client in case no other key helps, and an upstream that stalls it must not hang us.
    // Any failure of a request naming a model may be retried: its body may say the key lacks the model.
    const firstByteSec = (performance.now() - sentAt) / 1000;
    const mayRetry = upstream.retryOn.includes(response.status) || (model !== undefined && response.status >= 400);
    if (mayRetry) {
      const buffered = await bufferResponse(response, lease.token);
      return { kind: "response", response: buffered, lease, firstByteSec, buffered: true };
    }
    return { kind: "response", response, lease, firstByteSec, buffered: false };
  } catch (error) {
    const reason = controller.signal.reason as DOMException | undefined;
    const why =
      reason?.name === "TimeoutError" ? `no response within ${upstream.timeoutSec}s` : describeTransportError(error);
    return { kind: "transport", error: why, lease };
  } finally {
    clearTimeout(firstByteTimer);
  }
}

/**
 * What the answer says about the key; the store classifies it (a client error such as a prompt too
 * long costs the key nothing). Rate-limit headers are read on every answer, so a key whose budget is
 * spent rests before it ever gets a 429.
 */
function outcomeOf(
  response: Response,
  body: string | undefined,
  route: GatewayTarget,
  now: number,
  rateLimits: boolean,
  model: string | undefined,
): Outcome {
  const status = response.status;
  const budget = rateLimits ? parseRateLimitHeaders(response.headers, now) : undefined;
  if (status < 400) return { ok: true, status, budget, model };
  const floor = route.upstream.retryOn.includes(status) ? (route.upstream.cooldownSec ?? 0) * 1000 : 0;
  return {
    ok: false,
    status,
    budget,
    body,
    retryAfterMs: retryAfterMs(response.headers, now),
    minRestMs: floor || undefined,
    model,
  };
}

function withKeypoolHeaders(response: Response, keyId: string, attempts: number): Response {
  const headers = new Headers(response.headers);
  headers.set("x-keypool-key", keyId);
  headers.set("x-keypool-attempts", String(attempts));
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

/** The first MAX_KEPT_ERROR_BODY bytes of an error answer, scrubbed of the key; the rest is never read. */
async function bufferResponse(response: Response, token: string): Promise<Response> {
  const headers = clientResponseHeaders(response.headers, token);
  const { bytes } = await readCapped(response.body, MAX_KEPT_ERROR_BODY);
  headers.delete("content-length");
  const body = await scrubTokenFromBody(bytes, headers, token, MAX_KEPT_ERROR_BODY);
  const statusText = scrubTokenFromText(response.statusText, token);
  return new Response(body, { status: response.status, statusText, headers });
}

/** Buffers the request body (so a retry can replay it), refusing more than `limit` bytes. */
async function readBody(request: Request, limit: number): Promise<Uint8Array | undefined | "too-large"> {
  const declared = Number(request.headers.get("content-length") ?? Number.NaN);
  if (declared > limit) return "too-large";
  // With a declared length Bun reads the body natively (about 60 µs cheaper than iterating it here),
  // and `request.body`, which builds a stream object, is never touched.
  if (Number.isInteger(declared)) return declared > 0 ? request.bytes() : undefined;
  if (!request.body) return undefined;
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > limit) return "too-large";
    chunks.push(chunk);
  }
  return concat(chunks, size);
}

function joinPath(base: string, pathAndQuery: string): string {
  return base.replace(/\/+$/, "") + (pathAndQuery.startsWith("/") ? pathAndQuery : `/${pathAndQuery}`);
}

function describeTransportError(error: unknown): string {
  const code = (error as { code?: string })?.code;
  if (code === "ECONNREFUSED" || code === "ConnectionRefused") return "connection refused";
  if (code === "ECONNRESET" || code === "ConnectionClosed") return "connection reset";
  return code ? `network error (${code})` : "network error";
}

/** Clients must present one of the configured keys; none configured means the gateway is open. */
function clientKeyCheck(keys: string[] | undefined): (headers: Headers) => boolean {
  if (!keys || keys.length === 0) return () => true;
  const matches = createSecretMatcher(keys);
  return (headers) => matches(presentedCredential(headers));
}

/** The request's sticky session id, when the route's pool keeps sessions (header, then body, then fingerprint). */
function stickySession(
  route: GatewayRoute,
  headers: Headers,
  json: Record<string, unknown> | undefined,
): string | undefined {
  if (!route.session.enabled) return undefined;
  return sessionIdOf({ header: headers.get(route.session.header), body: json, fingerprint: route.session.fingerprint })
    ?.id;
}

/** The request's URL; Bun leaves it relative when the request names no host (HTTP/1.0 without Host). */
function parseUrl(url: string): URL | undefined {
  try {
    return new URL(url);
  } catch {
    return undefined;
  }
}
