/**
 * The real daemon from a real YAML file, with one pool whose gateway forwards to a benchmark's upstream,
 * as `keypool proxy` would run it. Shared by the gateway, soak and hostile-peer benchmark servers.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../src/config/load";
import { createDaemon } from "../src/daemon/create-daemon";
import { type Logger, createLogger } from "../src/log";

export interface BenchGatewayOptions {
  upstreamUrl: string;
  stateDir: string;
  /** The pool's tokens file, as lines `id,token`. */
  tokens: string[];
  /** More pool-level YAML lines (rotation, backoff, …). */
  settings?: string[];
  /** Default: JSON lines formatted as in production, then dropped, so the logging path's cost is measured. */
  logger?: Logger;
}

export interface BenchGateway {
  gatewayUrl: string;
  apiUrl: string;
  stop(): Promise<void>;
}

/** Writes the tokens file and the YAML a benchmark's daemon runs from; returns the YAML's path. */
export function writeBenchGatewayConfig(options: Omit<BenchGatewayOptions, "logger">): string {
  writeFileSync(join(options.stateDir, "tokens.txt"), `${options.tokens.join("\n")}\n`);
  const yaml = [
    "state_file: state.sqlite",
    "server: { addr: 127.0.0.1:0 }",
    "tokens_file: tokens.txt",
    "cooldown_sec: 0",
    ...(options.settings ?? []),
    `upstream: { listen: "127.0.0.1:0", base_url: "${options.upstreamUrl}", cooldown_sec: 0 }`,
    "",
  ].join("\n");
  const configPath = join(options.stateDir, "keypool.yaml");
  writeFileSync(configPath, yaml);
  return configPath;
}

/** JSON lines at info, formatted as in production and then dropped: the logging path's cost is measured. */
export function droppedJsonLogger(): Logger {
  return createLogger({ level: "info", format: "json", write: () => {} });
}

/**
 * Not async itself: an async function keeps every local in a scope that its closures (here `stop`) keep
 * alive, and `options` holds the token lines — 100,000 of them for the checkpoint section, a heap no
 * `keypool proxy` has, whose every collection would have marked them.
 */
export function startBenchGateway(options: BenchGatewayOptions): Promise<BenchGateway> {
  return startDaemonFrom(writeBenchGatewayConfig(options), options.logger ?? droppedJsonLogger());
}

async function startDaemonFrom(configPath: string, logger: Logger): Promise<BenchGateway> {
  const daemon = await createDaemon(loadConfig(configPath), { gateway: "all", logger, autoCheck: false });
  await daemon.start();
  const gatewayUrl = Object.values(daemon.gatewayUrls)[0];
  if (!gatewayUrl) throw new Error(`the daemon started no gateway listener; config was in ${configPath}`);
  return { gatewayUrl, apiUrl: daemon.url, stop: () => daemon.stop() };
}
