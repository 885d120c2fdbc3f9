import { defineCommand } from "citty";
import { loadConfig } from "../../config/load";
import { type Daemon, createDaemon } from "../../daemon/create-daemon";
import { createLogger } from "../../log";
import { configArg } from "../_shared";
import { EXIT } from "../exit";

export default defineCommand({
  meta: { name: "serve", description: "Run the broker API (GET /take, POST /release, /status) on the config's pools" },
  args: {
    ...configArg,
    port: { type: "string", description: "Listen on this port instead of server.addr's (0 picks a free one)" },
  },
  async run({ args }) {
    const config = loadConfig(args.config);
    const port = args.port === undefined ? undefined : Number(args.port);
    const daemon = await createDaemon(config, { logger: createLogger(), port });
    return runUntilSignal(daemon);
  },
});

/** Starts the daemon and stops it cleanly on SIGINT or SIGTERM. */
export async function runUntilSignal(daemon: Daemon): Promise<number> {
  await daemon.start();
  await waitForStopSignal();
  await daemon.stop();
  return EXIT.ok;
}

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
