import { defineCommand } from "citty";
import { callDaemon, failFromResponse, resolveDaemon } from "../_client";
import { daemonArgs, jsonArg } from "../_shared";
import { formatTable } from "../_table";
import { EXIT } from "../exit";

export default defineCommand({
  meta: { name: "status", description: "Show a running daemon's pools and keys (tokens masked)" },
  args: { ...daemonArgs, ...jsonArg, pool: { type: "string", description: "Only this pool" } },
  async run({ args }) {
    const query = args.pool ? `?pool=${encodeURIComponent(args.pool)}` : "";
    const result = await callDaemon(resolveDaemon(args), "GET", `/status${query}`);
    if (result.status !== 200) failFromResponse(result);
    if (args.json) {
      console.log(JSON.stringify(result.body, null, 2));
      return EXIT.ok;
    }
    console.log(renderStatus(result.body));
    return EXIT.ok;
  },
});

function renderStatus(body: { pools: Record<string, { total: number; counts: Record<string, number> }>; keys: any[] }): string {
  const sections: string[] = [];
  for (const [name, summary] of Object.entries(body.pools)) {
    const counts = Object.entries(summary.counts)
      .filter(([, n]) => n > 0)
      .map(([state, n]) => `${n} ${state}`)
      .join(", ");
    const rows = body.keys
      .filter((k) => k.pool === name)
      .map((k) => [k.id, k.masked, k.state, k.until ?? "-", k.requests, k.errors, k.in_flight, k.reason ?? ""]);
    sections.push(
      `pool ${name}: ${summary.total} keys${counts ? ` (${counts})` : ""}\n` +
        formatTable(["ID", "TOKEN", "STATE", "UNTIL", "REQUESTS", "ERRORS", "IN_FLIGHT", "REASON"], rows),
    );
  }
  return sections.join("\n\n");
}
