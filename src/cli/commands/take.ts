import { defineCommand } from "citty";
import { maskToken } from "../../pool/mask";
import { callDaemon, failFromResponse, resolveDaemon } from "../_client";
import { daemonArgs, jsonArg } from "../_shared";
import { EXIT } from "../exit";

export default defineCommand({
  meta: { name: "take", description: "Take a key from a running daemon (the token is shown only with --reveal)" },
  args: {
    ...daemonArgs,
    ...jsonArg,
    pool: { type: "string", description: "Pool name" },
    model: { type: "string", description: "The model the key is for: skips keys resting or denied for it" },
    reveal: {
      type: "boolean",
      description: "Print the raw token alone on stdout, for scripts: TOKEN=$(keypool take --reveal)",
    },
  },
  async run({ args }) {
    const params = new URLSearchParams();
    if (args.pool) params.set("pool", args.pool);
    if (args.model) params.set("model", args.model);
    const query = params.size > 0 ? `?${params}` : "";
    const result = await callDaemon(resolveDaemon(args), "GET", `/take${query}`);
    if (result.status !== 200) failFromResponse(result);
    const { token, ...lease } = result.body as Record<string, string>;
    // A token is printed only when asked for by name: terminals, CI logs and shell history are not safe places.
    if (args.reveal) {
      console.log(token);
      console.error(`lease ${lease.lease} on key ${lease.id} (pool ${lease.pool}), expires ${lease.expires_at}`);
    } else if (args.json) {
      console.log(JSON.stringify({ ...lease, masked: maskToken(token ?? "") }));
    } else {
      console.log(
        `key ${lease.id} (${maskToken(token ?? "")}) pool ${lease.pool} lease ${lease.lease} expires ${lease.expires_at}`,
      );
    }
    return EXIT.ok;
  },
});
