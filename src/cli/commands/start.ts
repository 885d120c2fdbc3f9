import { defineCommand } from "citty";
import { configFromApiKeyLb } from "../../config/api-key-lb";
import { createDaemon } from "../../daemon/create-daemon";
import { createLogger } from "../../log";
import {
  apiKeyLbContext,
  fetchGatewayHealth,
  installedUnit,
  platformHere,
  runAll,
  serviceCommands,
  writePid,
} from "../_api-key-lb";
import { apiKeyLbConfigArg } from "../_shared";
import { CliExit, EXIT } from "../exit";
import { serveUntilSignal, shutdownTimeoutOf } from "./serve";

export default defineCommand({
  meta: {
    name: "start",
    description:
      "Start the gateway on api-key-lb's settings: the service setup installed, else in the foreground; " +
      "says so when it already runs",
  },
  args: { ...apiKeyLbConfigArg },
  async run({ args }) {
    const context = apiKeyLbContext(args.config);
    const running = await fetchGatewayHealth(context.port);
    if (running) {
      const counts = `${running.keys.length} keys, ${running.sessions} sessions`;
      console.log(`already running on port ${context.port} (${counts})`);
      return EXIT.ok;
    }
    const unit = installedUnit(context.home);
    const platform = platformHere();
    if (unit && platform) {
      const result = await runAll(serviceCommands(platform, unit).start);
      if (!result.ok) throw new CliExit(EXIT.failure, `keypool start: ${result.command}: ${result.why}`);
      console.log(`started the service on port ${context.port} — keypool status shows it`);
      return EXIT.ok;
    }
    const config = configFromApiKeyLb({ path: args.config, env: context.env, home: context.home });
    console.log(`starting keypool on port ${context.port} (Ctrl-C or keypool stop to stop)`);
    const logger = createLogger(config.log);
    const daemon = await createDaemon(config, { logger, gateway: "all" });
    const removePid = writePid(context.home);
    try {
      return await serveUntilSignal(daemon, shutdownTimeoutOf(config), logger);
    } finally {
      removePid();
    }
  },
});
