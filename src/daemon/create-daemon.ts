import type { Server } from "bun";
import { ConfigError } from "../config/errors";
import { loadConfig } from "../config/load";
import type { Config, PoolConfig } from "../config/types";
import { Checker } from "../health/checker";
import { DEFAULT_REFRESH_AHEAD_SEC } from "../health/refresh";
import type { ReloadReport } from "../http/admin-routes";
import { MAX_BODY_BYTES, createApiApp } from "../http/app";
import { type GatewayListeners, type GatewayMode, startGatewayListeners } from "./gateway-listeners";
import { BrokerService } from "../http/broker-service";
import { type Logger, createLogger } from "../log";
import { type Clock, systemClock } from "../pool/clock";
import { DomainError } from "../pool/errors";
import { SqliteStore } from "../store/sqlite/sqlite-store";
import type { PoolSettings, PoolStore, SyncResult } from "../store/types";

export interface DaemonOptions {
  clock?: Clock;
  logger?: Logger;
  /** Overrides config.server.port (tests pass 0). */
  port?: number;
  /** Jitter and random rotation; tests pass a predictable one. */
  random?: () => number;
  /** false: start() leaves the checker's timer off and tests drive `checker.tick()` themselves. */
  autoCheck?: boolean;
  /** Which pools get a gateway: those with upstream.enabled (serve), or every pool with a base_url (proxy). */
  gateway?: GatewayMode;
}

export interface Daemon {
  readonly store: PoolStore;
  readonly broker: BrokerService;
  readonly checker: Checker;
  readonly app: ReturnType<typeof createApiApp>;
  /** The API's base URL once started. */
  readonly url: string;
  /** Gateway listen address as configured → URL bound, once started. */
  readonly gatewayUrls: Record<string, string>;
  start(): Promise<void>;
  stop(): Promise<void>;
  reload(): Promise<ReloadReport>;
}

/** Wires every part by hand: config → store → services → HTTP. Nothing listens until start(). */
export async function createDaemon(initialConfig: Config, options: DaemonOptions = {}): Promise<Daemon> {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger();
  let config = initialConfig;
  const store = new SqliteStore({ path: config.stateFile, clock, random: options.random });
  await store.syncPools(poolsForStore(config));
  const broker = new BrokerService(store);
  const checker = new Checker({ store, clock, logger, pools: () => Object.values(config.pools) });

  async function reload(): Promise<ReloadReport> {
    if (!config.source) throw new DomainError("INVALID_CONFIG", "this daemon was not started from a config file; nothing to reload");
    let next: Config;
    try {
      next = loadConfig(config.source);
    } catch (error) {
      if (error instanceof ConfigError) {
        logger.error("reload rejected; keeping the running config", { issues: error.issues });
        throw new DomainError("INVALID_CONFIG", `reload rejected, running config kept: ${error.issues.join("; ")}`);
      }
      throw error;
    }
    const results = await store.syncPools(poolsForStore(next));
    config = next;
    gateway?.update(next);
    const report = summarize(results);
    logger.info("config reloaded", { pools: report.pools });
    return report;
  }

  const app = createApiApp({ broker, reload, apiKey: config.server.apiKey, logger });
  let server: Server<unknown> | undefined;
  let gateway: GatewayListeners | undefined;

  const urlOf = (running: Server<unknown>) => `http://${formatHost(running.hostname ?? config.server.host)}:${running.port}`;

  return {
    store,
    broker,
    checker,
    app,
    get url() {
      if (!server) throw new Error("daemon not started");
      return urlOf(server);
    },
    get gatewayUrls() {
      return gateway?.urls ?? {};
    },
    async start() {
      // Bun's own limit answers with an empty 413, so it sits above ours: the app refuses bodies over
      // MAX_BODY_BYTES by Content-Length with a JSON error, and Bun stops chunked bodies that run on.
      app.listen({ hostname: config.server.host, port: options.port ?? config.server.port, maxRequestBodySize: 2 * MAX_BODY_BYTES });
      server = app.server ?? undefined;
      if (!server) throw new Error("the API server did not start");
      logger.info("keypool API listening", { url: urlOf(server), store: `sqlite:${config.stateFile}`, pools: store.poolNames() });
      gateway = startGatewayListeners(config, options.gateway ?? "enabled-only", { store, clock, logger });
      if (options.autoCheck !== false) checker.start();
    },
    async stop() {
      await Promise.all([app.stop(), gateway?.stop()]);
      // Before the store closes: probes in flight still record (or abandon) through it.
      await checker.stop();
      await store.close();
    },
    reload,
  };
}

export function poolSettingsOf(pool: PoolConfig): PoolSettings {
  return {
    name: pool.name,
    rotation: pool.rotation,
    cooldownSec: pool.cooldownSec,
    leaseTtlSec: pool.leaseTtlSec,
    maxConcurrency: pool.maxConcurrency,
    // Without a health check nothing would revive a quarantined key, so the quarantine times out.
    quarantineSec: pool.check ? undefined : (pool.upstream?.quarantineSec ?? 300),
    recheckIntervalSec: pool.recheckIntervalSec,
    reviveIntervalSec: pool.check?.reviveIntervalSec,
    failuresToDead: pool.check?.failuresToDead,
    refreshAheadSec: pool.refresh?.enabled ? (pool.refresh.aheadSec ?? DEFAULT_REFRESH_AHEAD_SEC) : undefined,
  };
}

function poolsForStore(config: Config) {
  return Object.values(config.pools).map((pool) => ({ settings: poolSettingsOf(pool), keys: pool.keys }));
}

function summarize(results: Record<string, SyncResult>): ReloadReport {
  const pools: ReloadReport["pools"] = {};
  for (const [name, r] of Object.entries(results)) {
    pools[name] = { added: r.added.length, updated: r.updated.length, removed: r.removed.length, kept: r.kept };
  }
  return { pools };
}

function formatHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}
