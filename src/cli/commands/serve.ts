import { defineCommand } from "citty";
import { findConfig } from "../../config/find-config";
import { DEFAULT_SHUTDOWN_TIMEOUT_SEC } from "../../config/load";
import type { Config } from "../../config/types";
import { type Daemon, createDaemon } from "../../daemon/create-daemon";
import { runUntilSignal } from "../../daemon/run-until-signal";
import { type Logger, createLogger } from "../../log";
import { configOrEnvArg } from "../_shared";
import { EXIT } from "../exit";

export default defineCommand({
  meta: { name: "serve", description: "Run the broker API (GET /take, POST /release, /status) on the config's pools" },
  args: {
    ...configOrEnvArg,
    port: { type: "string", description: "Listen on this port instead of server.addr's (0 picks a free one)" },
  },
  async run({ args }) {
    const config = findConfig({ path: args.config });
    const port = args.port === undefined ? undefined : Number(args.port);
    const logger = createLogger(config.log);
    const daemon = await createDaemon(config, { logger, port });
    return serveUntilSignal(daemon, shutdownTimeoutOf(config), logger);
  },
});

/** How long a stop waits for in-flight requests and streams, as the config says. */
export function shutdownTimeoutOf(config: Config): number {
  return config.shutdownTimeoutSec ?? DEFAULT_SHUTDOWN_TIMEOUT_SEC;
}

/**
 * Runs the daemon until SIGINT/SIGTERM and stops it gracefully: exit 0 once stopped, 130 when a
 * second signal cut the shutdown short. Takes the timeout, not the config: a parameter of an async
 * function stays reachable while it waits, and the config as loaded holds every key the store already has.
 */
export async function serveUntilSignal(daemon: Daemon, timeoutSec: number, logger: Logger): Promise<number> {
  const outcome = await runUntilSignal(daemon, logger, { timeoutSec });
  return outcome === "stopped" ? EXIT.ok : EXIT.interrupted;
}

/** Resolves on the first SIGINT or SIGTERM (for commands that need no drain, like demo). */
export function waitForStopSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
}
