import { defineCommand } from "citty";
import { resolve } from "node:path";
import { runDemo } from "../../demo/run-demo";
import { CliExit, EXIT } from "../exit";
import { waitForStopSignal } from "./serve";

export default defineCommand({
  meta: {
    name: "demo",
    description: "Run a simulated upstream, a pool of three keys and the gateway, and show keypool at work",
  },
  args: {
    state: { type: "string", description: "SQLite state file", default: "data/demo.db" },
    port: { type: "string", description: "Broker API port", default: "8787" },
    "gateway-port": { type: "string", description: "Gateway port", default: "8080" },
    requests: { type: "string", description: "Requests to send at start", default: "4" },
    once: { type: "boolean", description: "Exit after the scripted requests instead of serving until Ctrl-C" },
  },
  async run({ args }) {
    const [apiPort, gatewayPort, requests] = [args.port, args["gateway-port"], args.requests].map(Number) as [
      number,
      number,
      number,
    ];
    for (const [flag, value] of [
      ["--port", apiPort],
      ["--gateway-port", gatewayPort],
      ["--requests", requests],
    ] as const) {
      if (!Number.isInteger(value) || value < 0 || value > 65535)
        throw new CliExit(EXIT.usage, `${flag}: expected a whole number, e.g. ${flag} 0`);
    }
    let demo: Awaited<ReturnType<typeof runDemo>>;
    try {
      demo = await runDemo({
        stateFile: resolve(args.state),
        apiPort,
        gatewayPort,
        requests,
        print: (line) => console.log(line),
      });
    } catch (error) {
      if ((error as { code?: string }).code === "EADDRINUSE") {
        throw new CliExit(
          EXIT.failure,
          `a port is taken (${(error as Error).message}); pick others: keypool demo --port 0 --gateway-port 0`,
        );
      }
      throw error;
    }
    if (!args.once) await waitForStopSignal();
    await demo.stop();
    return EXIT.ok;
  },
});
