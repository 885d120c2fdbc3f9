import type { Server } from "bun";
import { Elysia } from "elysia";
import { parseAddr } from "../config/addr";
import { answerError, uncaughtErrorAnswer } from "../http/errors";
import { metricsRoutes } from "../http/metrics-routes";
import type { Logger } from "../log";
import type { Metrics } from "../metrics/metrics";
import { listenError } from "./listen-error";
import { listenerErrorOptions } from "./listener-errors";

/**
 * The dedicated `metrics.addr` listener: GET /metrics and nothing else, so it can be exposed to a
 * Prometheus on another network without exposing the API.
 */
export function startMetricsListener(addr: string, metrics: Metrics, logger: Logger): Server<unknown> {
  // Validated when the config was loaded.
  const { host, port } = parseAddr(addr)!;
  const app = new Elysia({ name: "metrics-listener" })
    .onError(function mapError({ error, code, request }) {
      return answerError(logger, request, error, code);
    })
    .use(metricsRoutes(metrics));
  let server: Server<unknown>;
  try {
    const fetch = (request: Request) => app.handle(request);
    server = Bun.serve({ hostname: host, port, fetch, ...listenerErrorOptions(uncaughtErrorAnswer(logger)) });
  } catch (error) {
    throw listenError(error, { host, port, field: "metrics.addr" });
  }
  logger.info("keypool metrics listening", { url: `http://${host.includes(":") ? `[${host}]` : host}:${server.port}/metrics` });
  return server;
}
