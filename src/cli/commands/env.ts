import { defineCommand } from "citty";
import { findConfig } from "../../config/find-config";
import { SHELLS, type Shell, clientEnv, renderEnv } from "../../setup/client-env";
import { configOrEnvArg } from "../_shared";
import { CliExit, EXIT } from "../exit";

export default defineCommand({
  meta: {
    name: "env",
    description: 'Print the variables that point OpenAI and Anthropic SDKs at the gateway: eval "$(keypool env)"',
  },
  args: {
    ...configOrEnvArg,
    shell: {
      type: "string",
      description: `Syntax: ${SHELLS.join(", ")} (default: fish when $SHELL is fish, else bash)`,
    },
    pool: { type: "string", description: "Only this pool's gateway" },
  },
  run({ args }) {
    const shell = args.shell ?? (process.env.SHELL?.endsWith("fish") ? "fish" : "bash");
    if (!(SHELLS as readonly string[]).includes(shell)) {
      throw new CliExit(EXIT.usage, `--shell "${shell}" is not one of ${SHELLS.join(", ")}`);
    }
    const config = findConfig({ path: args.config });
    let env: ReturnType<typeof clientEnv>;
    try {
      env = clientEnv(config, { pool: args.pool });
    } catch (error) {
      throw new CliExit(EXIT.usage, `keypool env: ${(error as Error).message}`);
    }
    process.stdout.write(renderEnv(env, shell as Shell));
    return EXIT.ok;
  },
});
