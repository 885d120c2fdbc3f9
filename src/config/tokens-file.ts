import { MAX_BUDGET_USD, MAX_MODELS, MAX_WEIGHT, MIN_WEIGHT, microsOfUsd, parseDecimal } from "../pool/bounds";
import { isModelName } from "../pool/model-facts";
import { ConfigError } from "./errors";
import type { KeySpec } from "./types";
import { UNSENDABLE_TOKEN, deriveKeyId, isSendableToken } from "../pool/token-rules";

export { UNSENDABLE_TOKEN, deriveKeyId, isSendableToken };

const KEY_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const GROUP = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * Parses a tokens file: one key per line as `token`, `id,token` or `id,token,weight`,
 * optionally followed by `group=NAME`, `refresh_token=VALUE`, `models=A|B`, `budget_day=USD` and `budget_month=USD`. Blank lines and `#` comments
 * are skipped. Every bad line is reported as `FILE:LINE: …` in one ConfigError; token values never appear in it.
 */
export function parseTokensFile(text: string, fileName: string): KeySpec[] {
  const keys: KeySpec[] = [];
  const issues: string[] = [];
  const lineOfId = new Map<string, number>();
  const lineOfToken = new Map<string, number>();

  text
    .replace(/^\uFEFF/, "")
    .split(/\r?\n/)
    .forEach((raw, index) => {
      const line = raw.trim();
      if (line === "" || line.startsWith("#")) return;
      const at = `${fileName}:${index + 1}`;
      const parsed = parseLine(line);
      if ("error" in parsed) {
        issues.push(`${at}: ${parsed.error}`);
        return;
      }
      const firstId = lineOfId.get(parsed.id);
      const firstToken = lineOfToken.get(parsed.token);
      if (firstId !== undefined)
        issues.push(`${at}: duplicate id "${parsed.id}" (first on line ${firstId}) — give each key its own id`);
      if (firstToken !== undefined)
        issues.push(`${at}: same token as line ${firstToken} — remove one of the two lines`);
      if (firstId !== undefined || firstToken !== undefined) return;
      lineOfId.set(parsed.id, index + 1);
      lineOfToken.set(parsed.token, index + 1);
      keys.push(parsed);
    });

  if (issues.length > 0) throw new ConfigError(issues);
  return keys;
}

function parseLine(line: string): KeySpec | { error: string } {
  const fields = line.split(",").map((f) => f.trim());
  const [first, second, ...rest] = fields;
  const token = second === undefined ? first! : second;
  const id = second === undefined ? deriveKeyId(token) : first!;

  if (token === "") return { error: "the token is empty — write token, id,token or id,token,weight" };
  if (/\s/.test(token))
    return { error: "the token contains whitespace — a token is one word; check for a missing comma" };
  if (!isSendableToken(token)) return { error: `the token ${UNSENDABLE_TOKEN}` };
  if (!KEY_ID.test(id))
    return { error: "the id must be 1–128 of A-Z a-z 0-9 . _ : - — fix the id before the first comma" };

  const key: KeySpec = { id, token, weight: 1 };
  for (const [i, field] of rest.entries()) {
    const problem = i === 0 && !field.includes("=") ? readWeight(field, key) : readExtra(field, key);
    if (problem) return { error: problem };
  }
  return key;
}

function readWeight(field: string, key: KeySpec): string | undefined {
  const weight = parseDecimal(field);
  if (weight !== undefined && weight >= MIN_WEIGHT && weight <= MAX_WEIGHT) {
    key.weight = weight;
    return undefined;
  }
  // Shown only when it looks like a number: anything else here is more likely a token or a refresh
  // token one column off (or the tail of a token with a comma in it).
  const shown = /^[\d.eE+-]{1,12}$/.test(field) ? ` "${field}"` : "";
  const range = `between ${MIN_WEIGHT} and ${MAX_WEIGHT}`;
  return `weight${shown} is not a number ${range} — write a decimal such as 1, 2 or 0.5`;
}

function readExtra(field: string, key: KeySpec): string | undefined {
  const eq = field.indexOf("=");
  const name = eq > 0 ? field.slice(0, eq).trim() : "";
  const value = field.slice(eq + 1).trim();
  if (name === "refresh_token") {
    // Like the token, never echoed: the message names the field, not its value.
    if (value === "" || /\s/.test(value)) return "refresh_token=VALUE needs a value without whitespace";
    key.refreshToken = value;
    return undefined;
  }
  if (name === "models") return readModels(value, key);
  if (name === "budget_day" || name === "budget_month") return readBudget(name, value, key);
  if (name !== "group") {
    // Only a field-like name is echoed: a base64 secret ending in "=" would otherwise be shown as the "name".
    const what = /^[a-z_]{1,24}$/.test(name) ? `"${name}"` : "this field";
    return `${what} is not understood — after the weight only ${EXTRA_FIELDS} are allowed`;
  }
  if (!GROUP.test(value)) return "group=NAME needs a name of 1–64 of A-Z a-z 0-9 . _ : -";
  key.group = value;
  return undefined;
}

const EXTRA_FIELDS = "group=NAME, refresh_token=VALUE, models=A|B, budget_day=USD and budget_month=USD";

/** `budget_day=10.00`, `budget_month=200`: the key's own spend cap in USD per UTC day or month. */
function readBudget(name: "budget_day" | "budget_month", value: string, key: KeySpec): string | undefined {
  const usd = /^\d+(\.\d+)?$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isFinite(usd) || usd <= 0 || usd > MAX_BUDGET_USD)
    return `${name}= needs an amount of USD > 0 and ≤ ${MAX_BUDGET_USD}, e.g. ${name}=10.00`;
  key.budget = { ...key.budget, [name === "budget_day" ? "dayMicros" : "monthMicros"]: microsOfUsd(usd) };
  return undefined;
}

/**
 * `models=gpt-4o|gpt-4o-mini`: the only models the key serves. Names are never echoed (a token pasted
 * one field off would be); a bad one is named by its place in the list.
 */
function readModels(value: string, key: KeySpec): string | undefined {
  const models = value.split("|").map((m) => m.trim());
  const fix = "write models=NAME|NAME with the names the provider uses, e.g. models=gpt-4o|gpt-4o-mini";
  if (value === "") return `models= is empty — ${fix}, or remove it`;
  if (models.length > MAX_MODELS) return `models= lists ${models.length} models; at most ${MAX_MODELS}`;
  const bad = models.findIndex((m) => !isModelName(m));
  if (bad !== -1) return `model ${bad + 1} of models= is not a model name — ${fix}`;
  const twice = models.findIndex((m, i) => models.indexOf(m) !== i);
  if (twice !== -1) return `model ${twice + 1} of models= is listed twice — remove one`;
  key.models = models;
  return undefined;
}
