import { defineCommand } from "citty";
import { callDaemon, failFromResponse, resolveDaemon } from "../_client";
import { daemonArgs, jsonArg } from "../_shared";
import { CliExit, EXIT } from "../exit";

export default defineCommand({
  meta: { name: "release", description: "Give a key back to a running daemon and say how it went" },
  args: {
    ...daemonArgs,
    ...jsonArg,
    lease: { type: "string", description: "Lease id from take" },
    id: { type: "string", description: "Key id (when you have no lease)" },
    pool: { type: "string", description: "Pool of --id, when several pools share ids" },
    failed: { type: "boolean", description: "The key failed (default: it worked)" },
    status: { type: "string", description: "Upstream HTTP status you got (e.g. 429)" },
    model: { type: "string", description: "The model you called: a rate limit then rests only that model on the key" },
  },
  async run({ args }) {
    if (!args.lease && !args.id)
      throw new CliExit(EXIT.usage, "say which key: --lease LEASE (from take) or --id KEY_ID");
    const status = args.status === undefined ? undefined : Number(args.status);
    if (status !== undefined && !(Number.isInteger(status) && status >= 100 && status <= 599)) {
      throw new CliExit(EXIT.usage, `--status: "${args.status}" is not an HTTP status (100-599)`);
    }
    const ok = !args.failed && (status === undefined || status < 400);
    const body = { lease: args.lease, id: args.id, pool: args.pool, ok, status, model: args.model || undefined };
    const result = await callDaemon(resolveDaemon(args), "POST", "/release", body);
    if (result.status !== 200) failFromResponse(result);
    const { pair } = result.body;
    const pairNote = pair ? `; ${pair.model} ${pair.state} until ${pair.until}` : "";
    console.log(
      args.json
        ? JSON.stringify(result.body)
        : `released ${result.body.id} (pool ${result.body.pool}): ${result.body.state}${pairNote}`,
    );
    return EXIT.ok;
  },
});
