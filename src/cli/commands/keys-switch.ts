import { defineCommand } from "citty";
import { callDaemon, failFromResponse, resolveDaemon } from "../_client";
import { type AdminKey, formatKey, keyIdOf, keyPath, keyTargetArgs } from "../_key-admin";
import { daemonArgs, jsonArg } from "../_shared";
import { EXIT } from "../exit";

/** `keys enable` and `keys disable`: an operator's switch, allowed on every key whatever defined it. */
function switchCommand(enabled: boolean) {
  const name = enabled ? "enable" : "disable";
  return defineCommand({
    meta: {
      name,
      description: enabled
        ? "Put a disabled key back into rotation"
        : "Stop handing a key out until it is enabled again",
    },
    args: { ...daemonArgs, ...jsonArg, ...keyTargetArgs },
    async run({ args }) {
      const id = keyIdOf(args, name);
      const result = await callDaemon(resolveDaemon(args), "PATCH", keyPath(args.pool, id), { enabled });
      if (result.status !== 200) failFromResponse(result);
      const key = result.body as AdminKey;
      console.log(args.json ? formatKey(key, true) : `${name}d key ${key.id} (pool ${key.pool}): ${key.state}`);
      return EXIT.ok;
    },
  });
}

export const enableCommand = switchCommand(true);
export const disableCommand = switchCommand(false);
