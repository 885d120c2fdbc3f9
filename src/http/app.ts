import type { Server } from "bun";
import { Elysia, t } from "elysia";
import { type Logger, requestPath } from "../log";
import type { Metrics } from "../metrics/metrics";
import { type Clock, systemClock } from "../pool/clock";
import { adminKeysRoutes } from "./admin-keys-routes";
import { type ReloadReport, adminRoutes } from "./admin-routes";
import { createApiKeyCheck } from "./auth";
import { brokerRoutes } from "./broker-routes";
import { brokerFastRoutes } from "./broker-fast-routes";
import type { BrokerService } from "../broker/broker-service";
import { compatRoutes } from "./compat-routes";
import type { CompatService } from "../broker/compat-service";
import { DOCS_PATHS, docsRoutes } from "./docs-routes";
import { STATUS_BY_CODE, answerError, errorResponse, refuseRequest } from "./errors";
import { errors } from "./schemas";
import { refuseDeepBody } from "./_json-depth";
import type { DomainError } from "../pool/errors";
import { parseAnyJson } from "./_any-json-body";
import { hostRefusalMessage } from "../pool/loopback-host";
import { eventsRoutes } from "./events-routes";
import { BUSY_HEADERS, busyMessage, connectionCap } from "./connection-cap";
import { DEFAULT_IDLE_TIMEOUT_SEC, DEFAULT_MAX_CONNECTIONS } from "../config/types";
import type { KeyAdminService } from "../broker/key-admin-service";
import { metricsRoutes } from "./metrics-routes";
import { statusRoutes } from "./status-routes";
import { uiRoutes } from "./ui-routes";

export const MAX_BODY_BYTES = 1024 * 1024;

export interface ApiDeps {
  broker: BrokerService;
  reload: () => Promise<ReloadReport>;
  apiKey?: string;
  logger: Logger;
  /** With metrics, the app also serves /metrics and the dashboard's /ui/data. */
  metrics?: Metrics;
  poolNames?: () => string[];
  clock?: Clock;
  /** With it, the app also serves the compatibility routes (/keys/:pool, /health/:pool) and /status's extra fields. */
  compat?: CompatService;
  /** With it, the app also serves key administration and usage: /pools, /pools/:pool/keys, /pools/:pool/usage. */
  keyAdmin?: KeyAdminService;
  /**
   * Answers whether a request's `Host` header may be served; set for a loopback listener without
   * api_key (see hostCheckFor), which refuses any other with 403 HOST_NOT_ALLOWED.
   */
  hostCheck?: (hostHeader: string | null) => boolean;
  /** Why the store must not be trusted (its state file deleted or replaced), making /health answer 503. */
  storageLost?: () => DomainError | undefined;
  /** server.idle_timeout_sec and server.max_connections of the listener the app is served on. */
  listener?: { idleTimeoutSec?: number; maxConnections?: number };
}

// Routes anyone may call, even when server.api_key is set: /metrics is scraped without credentials,
// and the docs and dashboard pages hold no data (the dashboard asks for the key to fetch any).
const PUBLIC_PATHS = new Set(["/health", "/metrics", "/ui", ...DOCS_PATHS]);

/** The API listener: broker, status and admin routes behind one error mapping and one auth check. */
export function createApiApp(deps: ApiDeps) {
  const refusal = createRequestGuard(
    deps.apiKey,
    deps.hostCheck,
    deps.listener?.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
    deps.logger,
  );
  const idleTimeoutSec = deps.listener?.idleTimeoutSec ?? DEFAULT_IDLE_TIMEOUT_SEC;
  // Elysia merges `serve.routes` over its own when it listens: these two go to Bun's router directly.
  const routes = brokerFastRoutes({ broker: deps.broker, logger: deps.logger, refusal, idleTimeoutSec });
  return (
    new Elysia({ name: "keypool-api", normalize: false, serve: { routes } })
      // Elysia reads a hook's source to decide whether to await it, and takes `return f(…)` for maybe
      // async: that await, and the promise it wraps every route in, cost ~4 µs of CPU per take+release.
      // So the hook stays this small, and returns the refusal by name.
      .onRequest(function guardRequest({ request, server }) {
        const refused = refusal(request, server);
        if (refused) return refused;
      })
      .onParse(parseAnyJson)
      // Between parsing and validation, which would walk a deeply nested body for seconds. No `return`:
      // Elysia would take the hook for maybe async (see guardRequest).
      .onTransform(function refuseDeep({ body }) {
        refuseDeepBody(body);
      })
      .onError(function mapError({ error, code, request }) {
        return answerError(deps.logger, request, error, code);
      })
      .get("/health", () => healthAnswer(deps), {
        response: { 200: t.Object({ ok: t.Literal(true) }, { examples: [{ ok: true }] }), ...errors(503) },
        detail: {
          summary: "Liveness: 503 STATE_FILE_LOST once the state file is gone; never needs auth",
          tags: ["status"],
          security: [],
        },
      })
      .use(brokerRoutes(deps.broker, idleTimeoutSec))
      .use(statusRoutes(deps.broker, deps.compat))
      .use(eventsRoutes(deps.broker))
      .use(adminRoutes(deps.reload))
      .use(deps.compat ? compatRoutes(deps.compat, deps.logger) : new Elysia({ name: "compat-off" }))
      .use(deps.keyAdmin ? adminKeysRoutes(deps.keyAdmin) : new Elysia({ name: "admin-keys-off" }))
      .use(observabilityRoutes(deps))
      .use(docsRoutes())
  );
}

/** Returned, not thrown: a probe polling a daemon that lost its file must not add an error line per poll. */
function healthAnswer(deps: ApiDeps) {
  const lost = deps.storageLost?.();
  if (lost) return errorResponse(lost.code, lost.message, STATUS_BY_CODE[lost.code]);
  return { ok: true as const };
}

function observabilityRoutes({ metrics, poolNames, clock }: ApiDeps) {
  const routes = new Elysia({ name: "observability" });
  if (!metrics) return routes;
  return routes
    .use(metricsRoutes(metrics))
    .use(uiRoutes({ metrics, poolNames: poolNames ?? (() => []), clock: clock ?? systemClock }));
}

/** The answer to a request refused before routing (over the cap, to a foreign Host, too large, or without the API key), if it is. */
function createRequestGuard(
  apiKey: string | undefined,
  hostCheck: ApiDeps["hostCheck"],
  maxConnections: number,
  logger: Logger,
): (request: Request, server: Server<unknown> | null) => Response | undefined {
  const hasValidApiKey = apiKey ? createApiKeyCheck(apiKey) : null;
  const overCap = connectionCap("api", maxConnections, logger);
  return function refusal(request, server) {
    if (overCap(server)) {
      return refuseRequest(logger, request, "SERVER_BUSY", busyMessage(maxConnections), 503, BUSY_HEADERS);
    }
    if (hostCheck) {
      const host = request.headers.get("host");
      if (!hostCheck(host))
        return refuseRequest(logger, request, "HOST_NOT_ALLOWED", hostRefusalMessage(host!, "server.api_key"), 403);
    }
    // GET /take is the hot path: it has no body, so its headers are not even looked at here.
    if (request.method !== "GET" && Number(request.headers.get("content-length") ?? 0) > MAX_BODY_BYTES) {
      // Closing lets the client stop uploading the rest instead of waiting on a connection we will not read.
      return refuseRequest(
        logger,
        request,
        "PAYLOAD_TOO_LARGE",
        `request body is larger than ${MAX_BODY_BYTES} bytes`,
        413,
        { connection: "close" },
      );
    }
    if (hasValidApiKey && !PUBLIC_PATHS.has(requestPath(request.url)) && !hasValidApiKey(request)) {
      return refuseRequest(
        logger,
        request,
        "UNAUTHORIZED",
        "missing or wrong API key: send it as X-API-Key or Authorization: Bearer",
        401,
      );
    }
    return undefined;
  };
}
