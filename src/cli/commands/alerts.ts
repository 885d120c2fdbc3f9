import { defineCommand } from "citty";
import { type Alert, originOf } from "../../alerts/alert";
import { DEFAULT_TIMEOUT_MS, postAlert } from "../../alerts/webhook-sender";
import { loadConfig } from "../../config/load";
import { formatTable } from "../_table";
import { configArg, jsonArg } from "../_shared";
import { CliExit, EXIT } from "../exit";
import { MAX_DURATION_SEC } from "../../pool/bounds";

const test = defineCommand({
  meta: { name: "test", description: "Send a sample alert to every webhook under alerts: and show what each answered" },
  args: {
    ...configArg,
    ...jsonArg,
    timeout: { type: "string", description: `Seconds to wait for each webhook (default ${DEFAULT_TIMEOUT_MS / 1000})` },
  },
  async run({ args }) {
    const config = loadConfig(args.config);
    const hooks = config.alerts?.webhooks ?? [];
    if (hooks.length === 0) {
      throw new CliExit(
        EXIT.usage,
        `${args.config} has no alerts.webhooks — add one, e.g. alerts: { webhooks: [{ url: https://…, format: json }] }`,
      );
    }
    const timeoutSec = args.timeout === undefined ? DEFAULT_TIMEOUT_MS / 1000 : Number(args.timeout);
    if (!Number.isFinite(timeoutSec) || timeoutSec <= 0 || timeoutSec > MAX_DURATION_SEC) {
      const range = `> 0 and ≤ ${MAX_DURATION_SEC}`;
      throw new CliExit(EXIT.usage, `--timeout expects a number of seconds ${range}, got "${args.timeout}"`);
    }
    const alert = sampleAlert(Object.keys(config.pools)[0] ?? "default", Date.now());
    // One attempt each, no retries: the point is to see the answer now.
    const results = await Promise.all(
      hooks.map(async (hook, index) => ({
        webhook: index + 1,
        origin: originOf(hook.url),
        format: hook.format,
        ...(await postAlert(hook, alert, { timeoutMs: timeoutSec * 1000 })),
      })),
    );
    if (args.json) console.log(JSON.stringify({ results }));
    else {
      const rows = results.map((r) => [
        `#${r.webhook}`,
        r.origin,
        r.format,
        r.ok ? "ok" : "FAILED",
        r.ok ? `HTTP ${r.status}` : r.error,
      ]);
      console.log(formatTable(["WEBHOOK", "ORIGIN", "FORMAT", "RESULT", "ANSWER"], rows));
    }
    return results.every((r) => r.ok) ? EXIT.ok : EXIT.failure;
  },
});

export default defineCommand({
  meta: { name: "alerts", description: "Work with alert webhooks" },
  subCommands: { test },
});

function sampleAlert(pool: string, now: number): Alert {
  return {
    event: "test",
    pool,
    key: "example-key",
    state: "dead",
    from: "live",
    reason: "sample alert sent by keypool alerts test",
    until: null,
    at: now,
  };
}
