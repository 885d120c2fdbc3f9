import type { Server } from "bun";
import { Elysia } from "elysia";
import { parseAddr } from "../config/addr";
import { answerError, refuseRequest, uncaughtErrorAnswer } from "../http/errors";
import { metricsRoutes } from "../http/metrics-routes";
import type { Logger } from "../log";
import type { Metrics } from "../metrics/metrics";
import { listenError } from "./listen-error";
import { DEFAULT_IDLE_TIMEOUT_SEC, DEFAULT_MAX_CONNECTIONS, type ServerConfig } from "../config/types";
import { BUSY_HEADERS, busyMessage, connectionCap } from "../http/connection-cap";

import { listenerErrorOptions } from "./listener-errors";

/**
 * The dedicated `metrics.addr` listener: GET /metrics and nothing else, so it can be exposed to a
 * Prometheus on another network without exposing the API.
 */
export function startMetricsListener(
  addr: string,
  metrics: Metrics,
  logger: Logger,
  server: ServerConfig,
): Server<unknown> {
  // Validated when the config was loaded.
  const { host, port } = parseAddr(addr)!;
  const app = new Elysia({ name: "metrics-listener" })
    .onError(function mapError({ error, code, request }) {
      return answerError(logger, request, error, code);
    })
    .use(metricsRoutes(metrics));
  const maxConnections = server.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const overCap = connectionCap(`metrics ${addr}`, maxConnections, logger);
  let listener: Server<unknown>;
  try {
    listener = Bun.serve({
      hostname: host,
      port,
      idleTimeout: server.idleTimeoutSec ?? DEFAULT_IDLE_TIMEOUT_SEC,
      fetch: (request, srv) =>
        overCap(srv)
          ? refuseRequest(logger, request, "SERVER_BUSY", busyMessage(maxConnections), 503, BUSY_HEADERS)
          : app.handle(request),
      ...listenerErrorOptions(uncaughtErrorAnswer(logger)),
    });
  } catch (error) {
    throw listenError(error, { host, port, field: "metrics.addr" });
  }
  const shown = host.includes(":") ? `[${host}]` : host;
  logger.info("keypool metrics listening", { url: `http://${shown}:${listener.port}/metrics` });
  return listener;
}
