import { defineCommand } from "citty";
import { loadConfig } from "../../config/load";
import type { Config } from "../../config/types";
import { checkKeys, type CheckRow, type CheckTarget } from "../../health/check-keys";
import { maskToken } from "../../pool/mask";
import { renderJUnit } from "../junit";
import { configArg } from "../_shared";
import { CliExit, EXIT } from "../exit";
import { MAX_KEY_LIMIT, MAX_SMALL_COUNT } from "../../pool/bounds";

export default defineCommand({
  meta: {
    name: "check",
    description:
      "Probe every key once with its pool's check and report which are live. Exit 0: at least --min-live live; 1: fewer; 2: config or flag error.",
  },
  args: {
    ...configArg,
    pool: { type: "string", description: "Only check this pool" },
    "min-live": {
      type: "string",
      default: "1",
      valueHint: "N",
      description: "Exit 1 when fewer keys than this are live",
    },
    concurrency: { type: "string", default: "8", valueHint: "N", description: "Probes in flight at once" },
    format: {
      type: "string",
      valueHint: "table|json|junit",
      description: "Output: a table (default), JSON, or a JUnit XML report for CI",
    },
    json: { type: "boolean", description: "Same as --format json" },
  },
  async run({ args }) {
    const format = formatOf(args.format, args.json);
    const minLive = integerFlag("--min-live", args["min-live"], 0, MAX_KEY_LIMIT);
    const concurrency = integerFlag("--concurrency", args.concurrency, 1, MAX_SMALL_COUNT);
    const config = loadConfig(args.config);
    const targets = selectTargets(config, args.pool);

    const rows = await checkKeys(targets, { concurrency });
    const live = rows.filter((r) => r.state === "live").length;
    const probed = rows.filter((r) => r.state !== "unchecked").length;

    if (format === "json") {
      console.log(JSON.stringify(jsonReport(rows, targets, { live, probed, minLive }), null, 2));
    } else if (format === "junit") {
      process.stdout.write(renderJUnit(rows, { live, minLive }));
    } else {
      printTable(rows, new Set(targets.map((t) => t.pool)).size > 1);
      const unchecked = rows.length - probed;
      console.log(`${live}/${probed} live${unchecked ? `, ${unchecked} unchecked (pool has no check)` : ""}`);
    }
    // Thrown rather than returned: citty drops a subcommand's return value, and CliExit reaches run.ts either way.
    if (live < minLive)
      throw new CliExit(EXIT.failure, `keypool check: ${live} live, fewer than --min-live ${minLive}`);
    return EXIT.ok;
  },
});

const FORMATS = ["table", "json", "junit"] as const;

function formatOf(format: string | undefined, json: boolean | undefined): (typeof FORMATS)[number] {
  if (format === undefined) return json ? "json" : "table";
  if (!(FORMATS as readonly string[]).includes(format)) {
    throw new CliExit(EXIT.usage, `--format must be one of ${FORMATS.join(", ")}, got "${format}"`);
  }
  if (json && format !== "json")
    throw new CliExit(EXIT.usage, `--json means --format json; drop one of --json and --format ${format}`);
  return format as (typeof FORMATS)[number];
}

function integerFlag(name: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < min || n > max) {
    throw new CliExit(EXIT.usage, `${name} must be a whole number from ${min} to ${max}, got "${value}"`);
  }
  return n;
}

function selectTargets(config: Config, only: string | undefined): CheckTarget[] {
  const names = Object.keys(config.pools);
  if (only !== undefined && !config.pools[only]) {
    throw new CliExit(EXIT.usage, `no pool named "${only}" — pools in this config: ${names.join(", ") || "(none)"}`);
  }
  return (only === undefined ? names : [only]).flatMap((name) => {
    const pool = config.pools[name]!;
    return pool.keys.map((key) => ({ pool: name, key, check: pool.check, proxy: pool.proxy }));
  });
}

function printTable(rows: CheckRow[], showPool: boolean): void {
  const header = [...(showPool ? ["POOL"] : []), "ID", "STATUS", "LATENCY", "REASON"];
  const lines = rows.map((r) => [
    ...(showPool ? [r.pool] : []),
    r.id,
    r.state,
    r.state === "unchecked" ? "-" : `${r.latencyMs}ms`,
    r.reason,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  for (const cells of [header, ...lines]) {
    console.log(cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  "));
  }
}

function jsonReport(
  rows: CheckRow[],
  targets: CheckTarget[],
  counts: { live: number; probed: number; minLive: number },
) {
  return {
    live: counts.live,
    total: counts.probed,
    unchecked: rows.length - counts.probed,
    min_live: counts.minLive,
    keys: rows.map((r, i) => ({
      pool: r.pool,
      id: r.id,
      status: r.state,
      latency_ms: r.latencyMs,
      reason: r.reason,
      masked: maskToken(targets[i]!.key.token),
    })),
  };
}
