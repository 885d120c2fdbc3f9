import { resolve } from "node:path";
import { defineCommand } from "citty";
import { homeOf } from "../../config/api-key-lb";
import { findConfig } from "../../config/find-config";
import { clientEnv } from "../../setup/client-env";
import { applyChange, backupStamp, knownFiles, labelUnder, planChanges } from "../../setup/client-files";
import { setupApiKeyLb } from "../_api-key-lb-setup";
import { configOrEnvArg } from "../_shared";
import { CliExit, EXIT } from "../exit";

export default defineCommand({
  meta: {
    name: "setup",
    description:
      "Show (and with --write, make) the change that points known client config files at the gateway: " +
      ".env, ~/.bashrc, ~/.zshrc, fish. With --keys/--target/--port (api-key-lb's setup): save " +
      "~/.config/api-key-lb/config.json, point Hermes and OpenCode at the gateway, install the service",
  },
  args: {
    ...configOrEnvArg,
    "dry-run": { type: "boolean", description: "Only print the diff (the default)" },
    write: { type: "boolean", description: "Write the changes, keeping FILE.keypool-backup-<time> beside each" },
    home: { type: "string", description: "Home directory to look in (default: yours)" },
    cwd: { type: "string", description: "Directory whose .env to look at (default: the current one)" },
    pool: { type: "string", description: "Only this pool's gateway" },
    keys: { type: "string", alias: "k", description: "api-key-lb setup: comma-separated API keys (never printed)" },
    target: { type: "string", alias: "t", description: "api-key-lb setup: the API's base URL, e.g. https://api.z.ai" },
    port: { type: "string", alias: "p", description: "api-key-lb setup: the gateway's port (default 4577)" },
  },
  run({ args }) {
    if (args.write && args["dry-run"])
      throw new CliExit(EXIT.usage, "--write and --dry-run contradict each other: pick one");
    const home = resolve(args.home ?? homeOf({}));
    // api-key-lb's setup writes at once, as it always did; its diff is printed before each write.
    if (args.keys !== undefined || args.target !== undefined || args.port !== undefined) {
      const flags = { keys: args.keys, target: args.target, port: args.port };
      return setupApiKeyLb(flags, { home, dryRun: Boolean(args["dry-run"]) });
    }
    const cwd = resolve(args.cwd ?? process.cwd());
    const config = findConfig({ path: args.config, cwd });
    let env: ReturnType<typeof clientEnv>;
    try {
      env = clientEnv(config, { pool: args.pool });
    } catch (error) {
      throw new CliExit(EXIT.usage, `keypool setup: ${(error as Error).message}`);
    }
    const label = (path: string) =>
      path.startsWith(`${cwd}/`) ? labelUnder(cwd, ".")(path) : labelUnder(home, "~")(path);
    const changes = planChanges(knownFiles({ home, cwd }), env, label);
    if (changes.length === 0) {
      console.log(
        `no known client config file found (.env in ${cwd}; .bashrc, .zshrc, .config/fish/config.fish in ${home}) — use "keypool env" instead`,
      );
      return EXIT.ok;
    }
    const stamp = backupStamp(new Date());
    for (const change of changes) {
      if (change.diff === "") {
        console.log(`${label(change.path)}: already points at the gateway`);
        continue;
      }
      process.stdout.write(change.diff);
      if (args.write) console.log(`wrote ${label(change.path)} (backup: ${label(applyChange(change, stamp))})`);
    }
    if (!args.write && changes.some((c) => c.diff !== ""))
      console.log("dry run: nothing written — run again with --write to apply");
    return EXIT.ok;
  },
});
