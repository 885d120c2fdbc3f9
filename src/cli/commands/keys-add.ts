import { defineCommand } from "citty";
import { callDaemon, failFromResponse, resolveDaemon } from "../_client";
import { type AdminKey, formatKey, keyPath } from "../_key-admin";
import { daemonArgs, jsonArg } from "../_shared";
import { CliExit, EXIT } from "../exit";
import { MAX_BUDGET_USD, MAX_KEY_LIMIT, MAX_WEIGHT, MIN_WEIGHT, parseDecimal } from "../../pool/bounds";

const LIMIT_FLAGS = {
  "max-concurrency": "max_concurrency",
  rpm: "rpm",
  tpm: "tpm",
  "daily-requests": "daily_requests",
} as const;

export default defineCommand({
  meta: {
    name: "add",
    description:
      "Add a key to a running daemon's pool; the token comes from stdin or a variable, never the command line",
  },
  args: {
    ...daemonArgs,
    ...jsonArg,
    pool: { type: "string", description: "Pool name", default: "default" },
    id: { type: "string", description: "Key id (default: derived from the token, as in a tokens file)" },
    "token-stdin": {
      type: "boolean",
      description: 'Read the token from stdin: printf %s "$KEY" | keypool keys add --token-stdin',
    },
    "token-env": { type: "string", description: "Read the token from this environment variable" },
    weight: { type: "string", description: "Share of traffic under weighted rotation (default 1)" },
    group: { type: "string", description: "Quota group" },
    "max-concurrency": { type: "string", description: "The key's own in-flight cap (wins over the pool's)" },
    rpm: { type: "string", description: "The key's own requests per minute" },
    tpm: { type: "string", description: "The key's own tokens per minute" },
    "daily-requests": { type: "string", description: "The key's own requests per day" },
    "budget-day": { type: "string", description: "The key's own spend cap in USD per UTC day, e.g. 10.00" },
    "budget-month": { type: "string", description: "The key's own spend cap in USD per UTC month, e.g. 200" },
  },
  async run({ args }) {
    const token = await readToken(args["token-stdin"], args["token-env"]);
    const limits: Record<string, number> = {};
    for (const [flag, field] of Object.entries(LIMIT_FLAGS)) {
      const value = args[flag as keyof typeof LIMIT_FLAGS];
      if (value !== undefined) limits[field] = boundedNumber(value, `--${flag}`, LIMIT_RANGE);
    }
    const budget = {
      day: budgetOf(args["budget-day"], "--budget-day"),
      month: budgetOf(args["budget-month"], "--budget-month"),
    };
    const body = {
      token,
      id: args.id,
      group: args.group,
      weight: args.weight === undefined ? undefined : boundedNumber(args.weight, "--weight", WEIGHT_RANGE),
      limits: Object.keys(limits).length > 0 ? limits : undefined,
      budget: budget.day === undefined && budget.month === undefined ? undefined : budget,
    };
    const result = await callDaemon(resolveDaemon(args), "POST", keyPath(args.pool), body);
    if (result.status !== 200) failFromResponse(result);
    const key = result.body as AdminKey;
    console.log(args.json ? formatKey(key, true) : `added key ${key.id} (${key.masked}) to pool ${key.pool}`);
    return EXIT.ok;
  },
});

async function readToken(fromStdin: boolean | undefined, variable: string | undefined): Promise<string> {
  if (Boolean(fromStdin) === (variable !== undefined)) {
    throw new CliExit(
      EXIT.usage,
      "give the token with exactly one of --token-stdin or --token-env VAR (never on the command line, where shell history keeps it)",
    );
  }
  const raw = fromStdin ? await Bun.stdin.text() : process.env[variable!];
  if (raw === undefined) throw new CliExit(EXIT.usage, `--token-env: ${variable} is not set`);
  const token = raw.trim();
  if (token === "")
    throw new CliExit(EXIT.usage, fromStdin ? "--token-stdin: stdin was empty" : `--token-env: ${variable} is empty`);
  if (/\s/.test(token)) throw new CliExit(EXIT.usage, "the token contains whitespace — give exactly one token");
  return token;
}

interface Range {
  min: number;
  max: number;
  integer: boolean;
}

const LIMIT_RANGE: Range = { min: 1, max: MAX_KEY_LIMIT, integer: true };
const WEIGHT_RANGE: Range = { min: MIN_WEIGHT, max: MAX_WEIGHT, integer: false };

/** The daemon refuses the same ranges; saying so here names the flag rather than the JSON field. */
function boundedNumber(value: string, flag: string, range: Range): number {
  const n = parseDecimal(value);
  if (n === undefined || n < range.min || n > range.max || (range.integer && !Number.isInteger(n))) {
    const what = `${range.integer ? "whole " : ""}number from ${range.min} to ${range.max}`;
    throw new CliExit(EXIT.usage, `${flag} takes a ${what}, got "${value}"`);
  }
  return n;
}

/** A cap in USD: a positive amount, as the daemon requires (zero would rest the key for good). */
function budgetOf(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const usd = parseDecimal(value);
  if (usd === undefined || usd <= 0 || usd > MAX_BUDGET_USD)
    throw new CliExit(
      EXIT.usage,
      `${flag} takes an amount of USD > 0 and ≤ ${MAX_BUDGET_USD}, e.g. 10.00, got "${value}"`,
    );
  return usd;
}
