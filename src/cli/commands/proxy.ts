import { defineCommand } from "citty";
import { loadConfig } from "../../config/load";
import { createDaemon } from "../../daemon/create-daemon";
import { routesByListener } from "../../daemon/gateway-listeners";
import { createLogger } from "../../log";
import { configArg } from "../_shared";
import { CliExit, EXIT } from "../exit";
import { runUntilSignal } from "./serve";

export default defineCommand({
  meta: { name: "proxy", description: "Run the broker API plus the gateway: clients call the upstream API through keypool with no key" },
  args: {
    ...configArg,
    port: { type: "string", description: "API port instead of server.addr's (0 picks a free one)" },
  },
  async run({ args }) {
    const config = loadConfig(args.config);
    if (routesByListener(config, "all").size === 0) {
      throw new CliExit(EXIT.usage, `config error: no pool has upstream.base_url — add e.g.\n  upstream:\n    base_url: https://api.openai.com`);
    }
    const port = args.port === undefined ? undefined : Number(args.port);
    const daemon = await createDaemon(config, { logger: createLogger(), port, gateway: "all" });
    return runUntilSignal(daemon);
  },
});
