import { defineCommand } from "citty";
import { COMMIT, VERSION } from "../../version";
import { jsonArg } from "../_shared";

export default defineCommand({
  meta: { name: "version", description: "Print keypool's version and build commit" },
  args: { ...jsonArg },
  run({ args }) {
    const info = {
      version: VERSION,
      commit: COMMIT,
      bun: Bun.version,
      platform: `${process.platform}-${process.arch}`,
    };
    console.log(
      args.json ? JSON.stringify(info) : `keypool ${info.version} (${info.commit}) bun ${info.bun} ${info.platform}`,
    );
    return 0;
  },
});
