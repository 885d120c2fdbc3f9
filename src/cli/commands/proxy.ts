import { defineCommand } from "citty";
import { findConfig } from "../../config/find-config";
import { createDaemon } from "../../daemon/create-daemon";
import { routesByListener } from "../../daemon/gateway-listeners";
import { createLogger } from "../../log";
import { configOrEnvArg } from "../_shared";
import { CliExit, EXIT } from "../exit";
import { serveUntilSignal, shutdownTimeoutOf } from "./serve";

export default defineCommand({
  meta: {
    name: "proxy",
    description: "Run the broker API plus the gateway: clients call the upstream API through keypool with no key",
  },
  args: {
    ...configOrEnvArg,
    port: { type: "string", description: "API port instead of server.addr's (0 picks a free one)" },
  },
  async run({ args }) {
    const config = findConfig({ path: args.config });
    if (routesByListener(config, "all").size === 0) {
      throw new CliExit(
        EXIT.usage,
        `config error: no pool has upstream.base_url — add e.g.\n  upstream:\n    base_url: https://api.openai.com`,
      );
    }
    const port = args.port === undefined ? undefined : Number(args.port);
    const logger = createLogger(config.log);
    const daemon = await createDaemon(config, { logger, port, gateway: "all" });
    return serveUntilSignal(daemon, shutdownTimeoutOf(config), logger);
  },
});
