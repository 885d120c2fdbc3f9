import { defineCommand } from "citty";
import { callDaemon, failFromResponse, resolveDaemon } from "../_client";
import { keyIdOf, keyPath, keyTargetArgs } from "../_key-admin";
import { daemonArgs, jsonArg } from "../_shared";
import { EXIT } from "../exit";

export default defineCommand({
  meta: {
    name: "rm",
    description: "Remove a key the admin API added (a tokens file's keys are removed from the file)",
  },
  args: { ...daemonArgs, ...jsonArg, ...keyTargetArgs },
  async run({ args }) {
    const id = keyIdOf(args, "rm");
    const result = await callDaemon(resolveDaemon(args), "DELETE", keyPath(args.pool, id));
    if (result.status !== 200) failFromResponse(result);
    console.log(args.json ? JSON.stringify(result.body, null, 2) : `removed key ${id} from pool ${args.pool}`);
    return EXIT.ok;
  },
});
