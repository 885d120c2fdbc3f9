import { defineCommand } from "citty";
import { apiKeyLbContext, installedUnit, platformHere, readPid, runAll, serviceCommands } from "../_api-key-lb";
import { apiKeyLbConfigArg } from "../_shared";
import { CliExit, EXIT } from "../exit";

export default defineCommand({
  meta: {
    name: "stop",
    description: "Stop the gateway keypool start (or setup's service) runs on api-key-lb's settings",
  },
  args: { ...apiKeyLbConfigArg },
  async run({ args }) {
    const context = apiKeyLbContext(args.config);
    const pid = readPid(context.home);
    if (pid !== undefined) {
      process.kill(pid, "SIGTERM");
      console.log(`stopped keypool (PID ${pid})`);
      return EXIT.ok;
    }
    const unit = installedUnit(context.home);
    const platform = platformHere();
    if (unit && platform) {
      const result = await runAll(serviceCommands(platform, unit).stop);
      if (!result.ok) throw new CliExit(EXIT.failure, `keypool stop: ${result.command}: ${result.why}`);
      console.log("stopped the service");
      return EXIT.ok;
    }
    // As api-key-lb: stopping what is not running is not an error.
    console.log("keypool is not running");
    return EXIT.ok;
  },
});
