import type { Server } from "bun";
import { parseAddr } from "../config/addr";
import { listenError } from "./listen-error";
import { listenerErrorOptions } from "./listener-errors";
import { fallbackChain } from "../config/fallback";
import { type Config, DEFAULT_IDLE_TIMEOUT_SEC, DEFAULT_MAX_CONNECTIONS } from "../config/types";
import { BUSY_HEADERS, busyMessage, connectionCap } from "../http/connection-cap";
import { refuseGatewayRequest, uncaughtGatewayAnswer } from "../gateway/errors";
import { createGateway } from "../gateway/gateway";
import { CacheHitCounter } from "../gateway/health-report";
import type { RetryBudget } from "../gateway/retry-budget";
import { buildRoute, type GatewayRoute, type GatewayTarget } from "../gateway/route";
import type { Logger } from "../log";
import type { MetricsRecorder } from "../metrics/metrics";
import type { Clock } from "../pool/clock";
import type { TakeQueue } from "../broker/take-queue";
import type { PoolStore } from "../store/types";
import { hostCheckFor, hostRefusalMessage, isLoopbackAddress } from "../pool/loopback-host";

export type GatewayMode = "enabled-only" | "all";

export interface GatewayListeners {
  /** listen address as configured → URL actually bound. */
  readonly urls: Record<string, string>;
  /** Swaps in the routes of a reloaded config; a new listen address needs a restart. */
  update(config: Config): void;
  /** Refuses new connections and waits for requests and streams in flight; `force` cuts them. */
  stop(force?: boolean): Promise<void>;
}

interface Deps {
  store: PoolStore;
  clock: Clock;
  logger: Logger;
  metrics?: MetricsRecorder;
  keys?: TakeQueue;
}

/**
 * Pools with an upstream, grouped by their `listen` address: one Bun.serve per address.
 * "enabled-only" (serve) starts pools with `upstream.enabled: true`; "all" (proxy) every pool
 * that has a `base_url`.
 */
export function routesByListener(config: Config, mode: GatewayMode): Map<string, GatewayRoute[]> {
  const groups = new Map<string, GatewayRoute[]>();
  for (const pool of Object.values(config.pools)) {
    const upstream = pool.upstream;
    if (!upstream?.baseUrl || (mode === "enabled-only" && !upstream.enabled)) continue;
    const list = groups.get(upstream.listen) ?? [];
    list.push(
      buildRoute(pool.name, upstream, {
        session: pool.session,
        modelMap: pool.modelMap,
        fallbacks: fallbackTargets(config, pool.name),
      }),
    );
    groups.set(upstream.listen, list);
  }
  return groups;
}

/**
 * The pools that serve `pool`'s gateway requests when it has no usable key, in fallback order.
 * A fallback needs an upstream to forward to; one without `upstream.base_url` serves only the broker.
 */
function fallbackTargets(config: Config, pool: string): GatewayTarget[] {
  const graph = Object.fromEntries(Object.values(config.pools).map((p) => [p.name, p.fallback ?? []]));
  return fallbackChain(graph, pool)
    .slice(1)
    .flatMap((name) => {
      const fallback = config.pools[name]!;
      return fallback.upstream?.baseUrl
        ? [{ pool: name, upstream: fallback.upstream, modelMap: fallback.modelMap }]
        : [];
    });
}

export function startGatewayListeners(config: Config, mode: GatewayMode, deps: Deps): GatewayListeners {
  const handlers = new Map<string, ReturnType<typeof createGateway>>();
  const hostChecks = new Map<string, ReturnType<typeof hostCheckFor>>();
  const servers = new Map<string, Server<unknown>>();
  const urls: Record<string, string> = {};
  // Outlives the handlers a reload replaces: a reload must not hand out a fresh retry allowance.
  const retryBudgets = new Map<string, RetryBudget>();
  const cacheHits = new CacheHitCounter();

  // Read once, like the API's: they shape the listeners, which a reload does not rebuild (server.* needs a restart).
  const allowedHosts = config.server.allowedHosts;
  const idleTimeoutSec = config.server.idleTimeoutSec ?? DEFAULT_IDLE_TIMEOUT_SEC;
  const maxConnections = config.server.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const install = (groups: Map<string, GatewayRoute[]>) => {
    for (const [listen, routes] of groups) {
      handlers.set(listen, createGateway({ ...deps, routes, retryBudgets, cacheHits, idleTimeoutSec }));
      // One pool without client keys leaves the whole listener open to whoever reaches it.
      const hasCredentials = routes.every((r) => r.upstream.clientKeys?.length);
      hostChecks.set(listen, hostCheckFor({ host: parseAddr(listen)!.host, hasCredentials, allowedHosts }));
    }
  };
  const groups = routesByListener(config, mode);
  install(groups);
  const serve = (listen: string, request: Request, server: Server<unknown>) => {
    const host = request.headers.get("host");
    if (hostChecks.get(listen)?.(host) === false) {
      const message = hostRefusalMessage(host!, "upstream.client_keys");
      return refuseGatewayRequest(deps.logger, request, { status: 403, code: "host_not_allowed", message });
    }
    return handlers.get(listen)!(request, server);
  };

  for (const [listen, routes] of groups) {
    // Validated when the config was loaded.
    const { host, port } = parseAddr(listen)!;
    let server: Server<unknown>;
    const overCap = connectionCap(`gateway ${listen}`, maxConnections, deps.logger);
    const busy = { status: 503, code: "server_busy", message: busyMessage(maxConnections), headers: BUSY_HEADERS };
    try {
      server = Bun.serve({
        hostname: host,
        port,
        // Reaps idle keep-alive connections; the gateway turns it off for a request while it waits on
        // a key or on the upstream, so long streams that sit idle between events are not cut.
        idleTimeout: idleTimeoutSec,
        // The gateway enforces max_body_bytes itself, by Content-Length and while reading, and answers
        // with an OpenAI-shaped 413. Bun's own limit would answer an empty 413 before the handler runs.
        maxRequestBodySize: Number.MAX_SAFE_INTEGER,
        fetch: (request, srv) =>
          overCap(srv) ? refuseGatewayRequest(deps.logger, request, busy) : serve(listen, request, srv),
        ...listenerErrorOptions(uncaughtGatewayAnswer(deps.logger)),
      });
    } catch (error) {
      // Listeners bound before this one must not outlive the failed start.
      for (const started of servers.values()) void started.stop(true);
      throw listenError(error, {
        host,
        port,
        field: `upstream.listen of pool ${routes.map((r) => r.pool).join(", ")}`,
      });
    }
    servers.set(listen, server);
    urls[listen] = `http://${server.hostname?.includes(":") ? `[${server.hostname}]` : server.hostname}:${server.port}`;
    deps.logger.info("keypool gateway listening", { url: urls[listen], pools: routes.map((r) => r.pool) });
    if (!isLoopbackAddress(host) && routes.some((r) => !r.upstream.clientKeys?.length)) {
      deps.logger.warn("the gateway is open: it listens beyond loopback and no upstream.client_keys are set", {
        listen,
      });
    }
  }

  return {
    urls,
    update(next) {
      const nextGroups = routesByListener(next, mode);
      for (const listen of nextGroups.keys()) {
        if (!servers.has(listen)) deps.logger.warn("new gateway listen address needs a restart", { listen });
      }
      install(nextGroups);
    },
    async stop(force = false) {
      await Promise.all([...servers.values()].map((s) => s.stop(force)));
    },
  };
}
