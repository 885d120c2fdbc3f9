import type { Server } from "bun";
import { ConfigError } from "../config/errors";
import { DEFAULT_SHUTDOWN_TIMEOUT_SEC, loadConfig } from "../config/load";
import { type Config, DEFAULT_IDLE_TIMEOUT_SEC } from "../config/types";
import { Checker } from "../health/checker";
import { AlertService, type AlertServiceOptions } from "../alerts/alert-service";
import type { ReloadReport } from "../http/admin-routes";
import { MAX_BODY_BYTES, createApiApp } from "../http/app";
import { uncaughtErrorAnswer } from "../http/errors";
import { listenerErrorOptions } from "./listener-errors";
import { type GatewayListeners, type GatewayMode, startGatewayListeners } from "./gateway-listeners";
import { drainListeners } from "./_drain";
import { listenError } from "./listen-error";
import { BrokerService } from "../broker/broker-service";
import { CompatService } from "../broker/compat-service";
import { KeyAdminService } from "../broker/key-admin-service";
import { type ConfigWatcher, createConfigWatcher } from "./config-watcher";
import { loadTokenCipher } from "../store/master-key";
import { type Logger, createLogger } from "../log";
import { type Metrics, createMetrics } from "../metrics/metrics";
import { startMetricsListener } from "./metrics-listener";
import { type Clock, systemClock } from "../pool/clock";
import { DomainError } from "../pool/errors";
import { createStore } from "../store/create-store";
import type { PoolStore, SyncResult } from "../store/types";
import { poolSettingsOf } from "./pool-settings";
import { importPoolctlState } from "./poolctl-state-import";
import { StoreGuard } from "./store-guard";
import { hostCheckFor, isLoopbackAddress } from "../pool/loopback-host";
import { fallbackChains } from "../config/fallback";
import { TakeQueue } from "../broker/take-queue";

export interface DaemonOptions {
  clock?: Clock;
  logger?: Logger;
  /** Overrides config.server.port (tests pass 0). */
  port?: number;
  /** Jitter and random rotation; tests pass a predictable one. */
  random?: () => number;
  /** false: start() leaves the checker's and the alert poller's timers off; tests drive `checker.tick()` and `alerts.tick()` themselves. */
  autoCheck?: boolean;
  /** Alert delivery tuning for tests: per-webhook queue bound, waits between attempts, and how to wait. */
  alertDelivery?: Pick<AlertServiceOptions, "queueLimit" | "retryDelaysMs" | "sleep" | "timeoutMs">;
  /** Which pools get a gateway: those with upstream.enabled (serve), or every pool with a base_url (proxy). */
  gateway?: GatewayMode;
}

export interface Daemon {
  readonly store: PoolStore;
  readonly broker: BrokerService;
  readonly checker: Checker;
  readonly alerts: AlertService;
  /** Watches the state file under the daemon; tests drive `storeGuard.tick()`. */
  readonly storeGuard: StoreGuard;
  readonly app: ReturnType<typeof createApiApp>;
  readonly metrics: Metrics;
  /** Takes for the broker and the gateway: waiting in line for a key, and fallback pools. */
  readonly keys: TakeQueue;
  /** The API's base URL once started. */
  readonly url: string;
  /** Gateway listen address as configured → URL bound, once started. */
  readonly gatewayUrls: Record<string, string>;
  /** The dedicated metrics listener's URL (metrics.addr), once started; undefined without one. */
  readonly metricsUrl: string | undefined;
  /** Binds the API and gateway listeners and starts the checker; a port that cannot be bound throws a ListenError. */
  start(): Promise<void>;
  /**
   * Stops in order: listeners (new connections refused, in-flight requests and streams finish, cut after
   * `timeoutSec`, default config.shutdownTimeoutSec or 30) → checker → store (checkpointed and closed).
   */
  stop(options?: { timeoutSec?: number }): Promise<void>;
  /**
   * Re-reads the config file and its tokens files; an invalid one is rejected (logged, INVALID_CONFIG)
   * and the running config kept. Reloads run one at a time. `trigger` only labels the log line.
   */
  reload(trigger?: ReloadTrigger): Promise<ReloadReport>;
}

export type ReloadTrigger = "api" | "SIGHUP" | "watch";

/** Wires every part by hand: config → store → services → HTTP. Nothing listens until start(). */
export async function createDaemon(initialConfig: Config, options: DaemonOptions = {}): Promise<Daemon> {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger(initialConfig.log);
  let config = initialConfig;
  const cipher = loadTokenCipher(config);
  const opened = await createStore(config, {
    clock,
    random: options.random,
    cipher,
    onConnectionsReplaced: () =>
      logger.warn(
        "PostgreSQL stopped answering on open connections past store.timeout_sec; they are given up and new ones opened",
      ),
  });
  const { store } = opened;
  // A pool in the store that the config does not name goes: say so, it may be another daemon's.
  const onPruned = (pool: string) =>
    logger.warn(`pool "${pool}" was in the store but is not in this config: its keys, leases and usage were removed`, {
      hint: "processes sharing one state file or database must run the same pools; give the others their own",
    });
  await store.syncPools(poolsForStore(config), { onPruned });
  const poolctlImport = importPoolctlState(config, store);
  config = withKeysInStore(config);
  // The daemon's closures hold this function's parameters for as long as it runs (an async function's
  // body reaches them through its scope): pointed at what is kept, the config as loaded, keys and all,
  // is let go.
  initialConfig = config;
  const metrics = createMetrics({ store, clock });
  const alerts = new AlertService({ store, clock, logger, config: () => config, ...options.alertDelivery });
  let chains = fallbackChains(config.pools);
  // A take that finds no key after its wait and its fallbacks raises pool_exhausted.
  const keys = new TakeQueue({
    store,
    clock,
    chainOf: (pool) => chains.get(pool) ?? [pool],
    onExhausted: (pool, error) => alerts.poolExhausted(pool, error.message, error.retryAfterMs),
  });
  const broker = new BrokerService(store, metrics, keys);
  const checker = new Checker({
    store,
    clock,
    logger,
    metrics,
    pools: () => Object.values(config.pools),
    onRefreshFailed: (pool, id, reason) => alerts.refreshFailed(pool, id, reason),
  });

  let reloading: Promise<unknown> = Promise.resolve();
  function reload(trigger: ReloadTrigger = "api"): Promise<ReloadReport> {
    const run = reloading.then(() => reloadNow(trigger));
    reloading = run.catch(() => {});
    return run;
  }

  async function reloadNow(trigger: ReloadTrigger): Promise<ReloadReport> {
    if (!config.source) {
      logger.warn("reload ignored: keypool was not started from a config file", { trigger });
      throw new DomainError("INVALID_CONFIG", "this daemon was not started from a config file; nothing to reload");
    }
    let next: Config;
    try {
      next = loadConfig(config.source);
    } catch (error) {
      if (error instanceof ConfigError) {
        logger.error("reload rejected; keeping the running config", { trigger, issues: error.issues });
        throw new DomainError("INVALID_CONFIG", `reload rejected, running config kept: ${error.issues.join("; ")}`);
      }
      throw error;
    }
    const results = await store.syncPools(poolsForStore(next), { onPruned });
    if (!Bun.deepEquals(next.server, config.server)) {
      // The listener, its key and its Host check were set up at start: an edited api_key would go on being refused.
      logger.warn("server settings changed: they take effect at the next restart (the running ones are kept)", {
        trigger,
      });
    }
    config = withKeysInStore(next);
    chains = fallbackChains(config.pools);
    gateway?.update(config);
    const report = summarize(results);
    // The reloaded config may name other tokens files, or turn watching on or off.
    if (watching) watchConfigFiles();
    logger.info("config reloaded", { trigger, pools: report.pools });
    return report;
  }

  let watcher: ConfigWatcher | undefined;
  // Between start() and stop(): only a running daemon watches files.
  let watching = false;
  // With `watch: true`, follows the config file and every tokens file it names, as of the last good load.
  function watchConfigFiles(): void {
    if (!config.watch || !config.source) {
      void watcher?.stop();
      watcher = undefined;
      return;
    }
    watcher ??= createConfigWatcher({
      logger,
      onChange: (files) => {
        logger.info("config files changed; reloading", { files });
        reload("watch").catch((error) => {
          if (!(error instanceof DomainError))
            logger.error("reload failed", { trigger: "watch", error: (error as Error).message });
        });
      },
    });
    const tokensFiles = Object.values(config.pools).flatMap((pool) => (pool.tokensFile ? [pool.tokensFile] : []));
    watcher.watch([config.source, ...tokensFiles]);
  }

  const storeGuard = new StoreGuard({ store, logger });
  const keyAdmin = new KeyAdminService({ store, tokensFileOf: (pool) => config.pools[pool]?.tokensFile });
  const compat = new CompatService(broker, store, keyAdmin, clock);
  const { server: listen } = config;
  const app = createApiApp({
    broker,
    reload,
    apiKey: listen.apiKey,
    logger,
    metrics,
    clock,
    poolNames: () => store.poolNames(),
    compat,
    keyAdmin,
    storageLost: () => storeGuard.lost,
    hostCheck: hostCheckFor({
      host: listen.host,
      hasCredentials: Boolean(listen.apiKey),
      allowedHosts: listen.allowedHosts,
    }),
    listener: { idleTimeoutSec: listen.idleTimeoutSec, maxConnections: listen.maxConnections },
  });
  let server: Server<unknown> | undefined;
  let gateway: GatewayListeners | undefined;
  let metricsServer: Server<unknown> | undefined;

  const urlOf = (running: Server<unknown>) =>
    `http://${formatHost(running.hostname ?? config.server.host)}:${running.port}`;

  return {
    store,
    broker,
    checker,
    alerts,
    storeGuard,
    app,
    metrics,
    keys,
    get url() {
      if (!server) throw new Error("daemon not started");
      return urlOf(server);
    },
    get gatewayUrls() {
      return gateway?.urls ?? {};
    },
    get metricsUrl() {
      return metricsServer ? `${urlOf(metricsServer)}/metrics` : undefined;
    },
    async start() {
      const port = options.port ?? config.server.port;
      try {
        // Bun's own limit answers with an empty 413, so it sits above ours: the app refuses bodies over
        // MAX_BODY_BYTES by Content-Length with a JSON error, and Bun stops chunked bodies that run on.
        // Elysia turns SO_REUSEPORT on: a second daemon on the same config would then share the port
        // silently (the kernel splits connections between them) instead of failing to bind.
        const errors = listenerErrorOptions(uncaughtErrorAnswer(logger));
        app.listen({
          hostname: config.server.host,
          port,
          maxRequestBodySize: 2 * MAX_BODY_BYTES,
          reusePort: false,
          idleTimeout: config.server.idleTimeoutSec ?? DEFAULT_IDLE_TIMEOUT_SEC,
          ...errors,
        });
      } catch (error) {
        throw listenError(error, { host: config.server.host, port, field: "server.addr", flag: "--port N" });
      }
      server = app.server ?? undefined;
      if (!server) throw new Error("the API server did not start");
      logger.info("keypool API listening", { url: urlOf(server), store: opened.where, pools: store.poolNames() });
      if (poolctlImport) logger[poolctlImport.level](poolctlImport.message, poolctlImport.fields);
      warnAboutApiCredentials(config.server, logger, urlOf(server));
      if (cipher) logger.info("tokens are encrypted at rest", { key: cipher.source, key_id: cipher.keyId });
      else if (opened.kind === "postgres") {
        logger.warn(
          "tokens are stored unencrypted in PostgreSQL; set KEYPOOL_MASTER_KEY or store.encryption_key_file to encrypt them",
          { store: opened.where },
        );
      } else if (config.stateFile !== ":memory:") {
        logger.warn(
          "tokens are stored unencrypted in the state file (mode 0600); set KEYPOOL_MASTER_KEY or store.encryption_key_file to encrypt them",
          { store: config.stateFile },
        );
      }
      // Its first look logs what is wrong with the state file before any traffic.
      storeGuard.start();
      watching = true;
      watchConfigFiles();
      try {
        gateway = startGatewayListeners(config, options.gateway ?? "enabled-only", {
          store,
          clock,
          logger,
          metrics,
          keys,
        });
        if (config.metrics?.addr) {
          metricsServer = startMetricsListener(config.metrics.addr, metrics, logger, config.server);
        }
      } catch (error) {
        await Promise.all([app.stop(true), gateway?.stop(true)]);
        server = undefined;
        gateway = undefined;
        throw error;
      }
      if (options.autoCheck !== false) {
        checker.start();
        alerts.start();
      }
    },
    async stop(stopOptions = {}) {
      const timeoutSec = stopOptions.timeoutSec ?? config.shutdownTimeoutSec ?? DEFAULT_SHUTDOWN_TIMEOUT_SEC;
      // First, so that turning waiters away below is not taken for an exhausted pool.
      await alerts.stop();
      // Callers waiting in line for a key get their 503 now rather than hold the drain up.
      keys.stop();
      const listeners = [
        ...(server ? [{ stop: (force: boolean) => (force ? server!.stop(true) : app.stop(false)) }] : []),
        ...(gateway ? [gateway] : []),
        ...(metricsServer ? [{ stop: (force: boolean) => metricsServer!.stop(force) }] : []),
      ];
      if (await drainListeners(listeners, timeoutSec * 1000)) {
        logger.warn("shutdown timeout: requests still in flight were cut", { shutdown_timeout_sec: timeoutSec });
      }
      // Before the store closes: probes in flight still record (or abandon) through it.
      await checker.stop();
      await storeGuard.stop();
      watching = false;
      await watcher?.stop();
      watcher = undefined;
      await store.close();
    },
    reload,
  };
}

// Shorter keys can be guessed online: nothing slows down or locks out repeated wrong keys.
const MIN_API_KEY_LENGTH = 16;

// poolctl's own example binds ":8787" with no key, so refusing to start would break its users; a warning will not.
function warnAboutApiCredentials(server: Config["server"], logger: Logger, url: string): void {
  if (!server.apiKey && !isLoopbackAddress(server.host)) {
    const why = "it listens beyond loopback and server.api_key is not set, so anyone who reaches it can take keys";
    logger.warn(`the API is open: ${why}`, {
      url,
      fix: "set server.api_key (KEYPOOL_API_KEY), or listen on 127.0.0.1",
    });
  }
  if (server.apiKey && server.apiKey.length < MIN_API_KEY_LENGTH) {
    const fix = "use a random one, e.g. openssl rand -hex 24";
    logger.warn(`server.api_key is shorter than ${MIN_API_KEY_LENGTH} characters; ${fix}`);
  }
}

/**
 * The config as the daemon keeps it once the store has the keys: every pool's `keys` left out. Nothing
 * after the sync reads them from the config (the store, the gateway and the checker go by what the
 * store holds), and kept, a 100,000-key pool's would stay in the heap for good — an object and two
 * strings a key, for every garbage collection to mark.
 */
function withKeysInStore(config: Config): Config {
  const pools: Config["pools"] = {};
  for (const [name, pool] of Object.entries(config.pools)) pools[name] = { ...pool, keys: [] };
  return { ...config, pools };
}

function poolsForStore(config: Config) {
  return Object.values(config.pools).map((pool) => ({
    settings: poolSettingsOf(pool, config.prices),
    // A pool without a tokens file has its keys from the environment.
    keys: pool.keys.map((key) => ({ ...key, origin: pool.tokensFile ? ("file" as const) : ("env" as const) })),
  }));
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
