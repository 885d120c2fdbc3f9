import { defineCommand } from "citty";
import { apiKeyLbContext, configFlag, fetchGatewayHealth, renderGatewayHealth, usesApiKeyLb } from "../_api-key-lb";
import { callDaemon, type DaemonTarget, failFromResponse, resolveDaemon } from "../_client";
import { daemonArgs, jsonArg } from "../_shared";
import { type CellPainter, formatTable } from "../_table";
import { CliExit, EXIT } from "../exit";
import { MAX_DURATION_SEC } from "../../pool/bounds";

const DEFAULT_WATCH_SEC = 2;

export default defineCommand({
  meta: {
    name: "status",
    description:
      "Show a running daemon's pools and keys (tokens masked); with api-key-lb's settings and no keypool.yaml, " +
      "its gateway's /health",
  },
  args: {
    ...daemonArgs,
    ...jsonArg,
    pool: { type: "string", description: "Only this pool" },
    watch: { type: "string", description: `Refresh every SECONDS (default ${DEFAULT_WATCH_SEC}) until Ctrl-C` },
  },
  async run({ args, rawArgs }) {
    const given = configFlag(rawArgs, args.config);
    if (args.url === undefined && usesApiKeyLb(given)) return apiKeyLbStatus(given, Boolean(args.json));
    const target = resolveDaemon(args);
    const path = `/status${args.pool ? `?pool=${encodeURIComponent(args.pool)}` : ""}`;
    // `--watch --json` hands "--json" to --watch as its value: both flags still count.
    const json = Boolean(args.json) || rawArgs.includes("--json");
    const color = !json && Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
    const render = (body: StatusBody) =>
      json ? JSON.stringify(body, null, 2) : renderStatus(body, { color, now: Date.now() });
    if (args.watch === undefined) {
      console.log(render(await fetchStatus(target, path)));
      return EXIT.ok;
    }
    const frame = async () => {
      const body = await fetchStatus(target, path, { tolerateUnreachable: true });
      return typeof body === "string" ? body : render(body);
    };
    await watch(watchSeconds(args.watch), frame, Boolean(process.stdout.isTTY));
    return EXIT.ok;
  },
});

/** api-key-lb's status: the gateway's /health on its port (no daemon API address needed). */
async function apiKeyLbStatus(configPath: string | undefined, json: boolean): Promise<number> {
  const context = apiKeyLbContext(configPath);
  const health = await fetchGatewayHealth(context.port);
  if (!health) {
    throw new CliExit(EXIT.failure, `keypool is not running on port ${context.port} — start it with: keypool start`);
  }
  console.log(json ? JSON.stringify(health, null, 2) : renderGatewayHealth(health, context.port));
  return EXIT.ok;
}

interface KeyRow {
  id: string;
  pool: string;
  masked: string;
  state: string;
  until: string | null;
  requests: number;
  errors: number;
  in_flight: number;
  reason: string | null;
  /** The last day's usage; absent from daemons that do not count it. */
  usage?: CompactUsage;
  /** The models the key cannot serve now; absent from daemons without model-aware keys. */
  models?: Record<string, { state: string; until: string; reason: string | null }>;
  only_models?: string[] | null;
  /** Spend against caps; null or absent when no cap applies. */
  spend?: SpendJson | null;
}

type SpendWindowJson = { spent_usd: number; cap_usd: number | null; unpriced: number; resets_at: string };
type SpendJson = { day: SpendWindowJson; month: SpendWindowJson };

/** The cache fields are absent from daemons that predate prompt-cache accounting. */
interface CompactUsage {
  requests: number;
  success_rate: number | null;
  input_tokens: number;
  output_tokens: number;
  cached_tokens?: number;
  cache_hit_ratio?: number | null;
  cost_usd: number;
}

interface StatusBody {
  pools: Record<
    string,
    { total: number; counts: Record<string, number>; usage?: CompactUsage; spend?: SpendJson | null }
  >;
  keys: KeyRow[];
}

async function fetchStatus(target: DaemonTarget, path: string): Promise<StatusBody>;
async function fetchStatus(
  target: DaemonTarget,
  path: string,
  options: { tolerateUnreachable: true },
): Promise<StatusBody | string>;
/** With `tolerateUnreachable`, a daemon that is down (or restarting) is a message to show, not an exit; a refused key still exits. */
async function fetchStatus(
  target: DaemonTarget,
  path: string,
  options: { tolerateUnreachable?: boolean } = {},
): Promise<StatusBody | string> {
  let result: Awaited<ReturnType<typeof callDaemon>>;
  try {
    result = await callDaemon(target, "GET", path);
  } catch (error) {
    if (options.tolerateUnreachable && error instanceof CliExit) return error.message;
    throw error;
  }
  if (result.status !== 200) failFromResponse(result);
  return result.body as StatusBody;
}

function watchSeconds(value: string): number {
  if (value === "" || value.startsWith("-")) return DEFAULT_WATCH_SEC;
  const seconds = Number(value);
  // Past setTimeout's range the timer fires at once: a "weekly" refresh would redraw as fast as it can.
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_DURATION_SEC) {
    const range = `greater than 0 and at most ${MAX_DURATION_SEC}`;
    throw new CliExit(EXIT.usage, `--watch takes a number of seconds ${range}, got "${value}" (e.g. --watch 5)`);
  }
  return seconds;
}

/** Prints a frame every `seconds` (clearing a terminal first) until SIGINT or SIGTERM. */
async function watch(seconds: number, frame: () => Promise<string>, clearScreen: boolean): Promise<void> {
  let stopped = false;
  let wake = () => {};
  const stop = () => {
    stopped = true;
    wake();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  try {
    while (!stopped) {
      const text = await frame();
      if (stopped) break;
      const footer = `\nevery ${seconds}s · ${new Date().toLocaleTimeString()} · Ctrl-C to quit`;
      process.stdout.write(`${clearScreen ? "\x1b[H\x1b[2J" : ""}${text}\n${clearScreen ? footer : ""}\n`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, seconds * 1000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
}

const ANSI = {
  reset: "\x1b[0m",
  bold: "\x1b[1m",
  dim: "\x1b[2m",
  red: "\x1b[31m",
  green: "\x1b[32m",
  yellow: "\x1b[33m",
  magenta: "\x1b[35m",
};
const STATE_COLOR: Record<string, string> = {
  live: ANSI.green,
  unknown: ANSI.dim,
  cooling: ANSI.yellow,
  quarantined: ANSI.magenta,
  dead: ANSI.red,
  disabled: ANSI.dim,
};
const HEADER = ["ID", "TOKEN", "STATE", "UNTIL", "REQUESTS", "ERRORS", "IN_FLIGHT", "REASON"];
const USAGE_HEADER = [...HEADER.slice(0, -1), "USAGE 24H", "CACHE HIT", "REASON"];
const STATE_COLUMN = HEADER.indexOf("STATE");

/** One table per pool. With color (a terminal), states are colored and UNTIL counts down; plain text keeps ISO times. */
export function renderStatus(body: StatusBody, options: { color: boolean; now: number }): string {
  const paint = (code: string, text: string) => (options.color && code ? `${code}${text}${ANSI.reset}` : text);
  const sections: string[] = [];
  for (const [name, summary] of Object.entries(body.pools)) {
    const counts = Object.entries(summary.counts)
      .filter(([, n]) => n > 0)
      .map(([state, n]) => paint(STATE_COLOR[state] ?? "", `${n} ${state}`))
      .join(", ");
    const keys = body.keys.filter((k) => k.pool === name);
    const withUsage = keys.some((k) => k.usage);
    const restricted = keys.some((k) => k.only_models);
    const capped = keys.some((k) => k.spend);
    const until = (at: string | null) => (at === null ? "-" : options.color ? countdown(at, options.now) : at);
    const rows = keys.map((k) => [
      k.id,
      k.masked,
      k.state,
      until(k.until),
      k.requests,
      k.errors,
      k.in_flight,
      ...(withUsage ? [formatUsage(k.usage), formatRatio(k.usage?.cache_hit_ratio)] : []),
      ...(restricted ? [k.only_models ? k.only_models.join("|") : "any"] : []),
      ...(capped ? [formatSpend(k.spend)] : []),
      k.reason ?? "",
    ]);
    const header = [...(withUsage ? USAGE_HEADER : HEADER)];
    if (restricted) header.splice(-1, 0, "MODELS");
    if (capped) header.splice(-1, 0, "SPEND");
    const painter: CellPainter = (text, row, column) => {
      if (row === -1) return paint(ANSI.bold, text);
      return column === STATE_COLUMN ? paint(STATE_COLOR[keys[row]!.state] ?? "", text) : text;
    };
    const cache = formatPoolCache(summary.usage);
    const spend = summary.spend ? ` · budget ${formatSpend(summary.spend)}` : "";
    const heading = `${paint(ANSI.bold, `pool ${name}`)}: ${summary.total} keys${counts ? ` (${counts})` : ""}${cache}${spend}`;
    sections.push([heading, formatTable(header, rows, painter), ...pairTable(keys, until, paint)].join("\n"));
  }
  return sections.join("\n\n");
}

/**
 * Spend in the windows that have a cap, as `$8.42/$10.00 today`; a key held only by its pool's cap shows
 * its day's spend alone. Requests that could not be priced are counted beside it, never as $0.
 */
export function formatSpend(spend: SpendJson | null | undefined): string {
  if (!spend) return "-";
  const words = { day: "today", month: "this month" } as const;
  const parts = (["day", "month"] as const)
    .filter((w) => spend[w].cap_usd !== null)
    .map((w) => `${dollars(spend[w].spent_usd)}/${dollars(spend[w].cap_usd!)} ${words[w]}`);
  if (parts.length === 0) parts.push(`${dollars(spend.day.spent_usd)} today`);
  const unpriced = spend.day.unpriced > 0 ? ` (+${spend.day.unpriced} unpriced)` : "";
  return `${parts.join(", ")}${unpriced}`;
}

function dollars(usd: number): string {
  return usd >= 1 || usd === 0 ? `$${usd.toFixed(2)}` : `$${Number(usd.toPrecision(4))}`;
}

const PAIR_HEADER = ["KEY", "MODEL", "STATE", "UNTIL", "REASON"];
const PAIR_STATE_COLUMN = PAIR_HEADER.indexOf("STATE");
const PAIR_COLOR: Record<string, string> = { cooling: ANSI.yellow, denied: ANSI.magenta };

/**
 * The pool's (key, model) pairs that cannot serve now, under its keys: the key serves its other models
 * meanwhile, so they are not the key's state and get a table of their own. Nothing when there are none.
 */
function pairTable(
  keys: readonly KeyRow[],
  until: (at: string) => string,
  paint: (code: string, text: string) => string,
): string[] {
  const pairs = keys.flatMap((k) =>
    Object.entries(k.models ?? {})
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([model, pair]) => ({ key: k.id, model, ...pair })),
  );
  if (pairs.length === 0) return [];
  const rows = pairs.map((p) => [p.key, p.model, p.state, until(p.until), p.reason ?? ""]);
  const painter: CellPainter = (text, row, column) => {
    if (row === -1) return paint(ANSI.bold, text);
    return column === PAIR_STATE_COLUMN ? paint(PAIR_COLOR[pairs[row]!.state] ?? "", text) : text;
  };
  const title = `${paint(ANSI.bold, "models resting or denied")} (each key still serves its other models):`;
  return [title, formatTable(PAIR_HEADER, rows, painter)];
}

/** `120 req · 97.5% ok · 57.3k tok · $0.0127`; `-` before the first request. */
export function formatUsage(usage: KeyRow["usage"]): string {
  if (!usage || usage.requests === 0) return "-";
  const rate = usage.success_rate === null ? "" : ` · ${(Math.round(usage.success_rate * 1000) / 10).toString()}% ok`;
  const tokens = usage.input_tokens + usage.output_tokens;
  const tok = tokens > 0 ? ` · ${compactNumber(tokens)} tok` : "";
  const cost =
    usage.cost_usd > 0
      ? ` · $${usage.cost_usd < 1 ? usage.cost_usd.toPrecision(3).replace(/0+$/, "") : usage.cost_usd.toFixed(2)}`
      : "";
  return `${usage.requests} req${rate}${tok}${cost}`;
}

/** A cache-hit ratio as a percentage to one decimal; `-` before any input (or from a daemon that does not say). */
export function formatRatio(ratio: number | null | undefined): string {
  return ratio === null || ratio === undefined ? "-" : `${(Math.round(ratio * 1000) / 10).toString()}%`;
}

/** ` · cache hit 84.4% of 96k input tokens (24h)`, or nothing before any input. */
function formatPoolCache(usage: CompactUsage | undefined): string {
  if (!usage || usage.input_tokens === 0 || usage.cache_hit_ratio === undefined) return "";
  return ` · cache hit ${formatRatio(usage.cache_hit_ratio)} of ${compactNumber(usage.input_tokens)} input tokens (24h)`;
}

function compactNumber(n: number): string {
  if (n < 1000) return String(n);
  if (n < 1_000_000) return `${(n / 1000).toFixed(1).replace(/\.0$/, "")}k`;
  return `${(n / 1_000_000).toFixed(1).replace(/\.0$/, "")}M`;
}

function countdown(until: string, now: number): string {
  const seconds = Math.round((Date.parse(until) - now) / 1000);
  if (seconds <= 0) return "now";
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return `in ${h ? `${h}h${String(m).padStart(2, "0")}m` : m ? `${m}m${String(s).padStart(2, "0")}s` : `${s}s`}`;
}
