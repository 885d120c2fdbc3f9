import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { configFromEnv } from "./env-config";
import { ConfigError } from "./errors";
import type { Config } from "./types";

type Env = Record<string, string | undefined>;

/**
 * api-key-lb's configuration, for its users switching to keypool: its `config.json` (`keys`, `target`,
 * `port`, `cooldown_ms`, `session_ttl_ms`) and its variables (`API_KEYS`, `TARGET`, `PORT`,
 * `COOLDOWN_MS`, `SESSION_TTL_MS`, `API_KEY_LB_CONFIG`), in its order: flags → environment → file →
 * defaults. The file's values are laid under the environment, which env-config.ts then reads as it
 * reads any environment, so the two ways of configuring keypool cannot drift apart.
 */

/** The file's fields and the variable each stands in for. */
const FILE_FIELDS = {
  keys: "API_KEYS",
  target: "TARGET",
  port: "PORT",
  cooldown_ms: "COOLDOWN_MS",
  session_ttl_ms: "SESSION_TTL_MS",
} as const;

const EXAMPLE = '{"keys": "key1,key2", "target": "https://api.z.ai"}';
type FileField = keyof typeof FILE_FIELDS;

/** api-key-lb's defaults, for whatever neither the environment nor the file sets. */
export const API_KEY_LB_DEFAULTS: Readonly<Record<string, string>> = {
  TARGET: "https://api.openai.com",
  PORT: "4577",
  COOLDOWN_MS: "60000",
  SESSION_TTL_MS: "3600000",
};

/** The name of the service `keypool setup --keys` installs, and of the directory its state lives in. */
export const API_KEY_LB_SERVICE = "keypool-api-key-lb";

/** Where api-key-lb keeps its config (and where `keypool setup --keys` saves it). */
export function apiKeyLbConfigPath(home: string): string {
  return join(home, ".config", "api-key-lb", "config.json");
}

export interface ApiKeyLbLookup {
  env?: Env;
  cwd?: string;
  /** Default: $HOME, else the user's home directory. */
  home?: string;
}

/** The file to read when no path was given: API_KEY_LB_CONFIG, else ./api-key-lb.json, else the one in ~/.config. */
export function findApiKeyLbFile(options: ApiKeyLbLookup = {}): string | undefined {
  const env = options.env ?? process.env;
  const cwd = resolve(options.cwd ?? process.cwd());
  if (env.API_KEY_LB_CONFIG) return resolve(cwd, env.API_KEY_LB_CONFIG);
  const nearby = join(cwd, "api-key-lb.json");
  if (existsSync(nearby)) return nearby;
  const saved = apiKeyLbConfigPath(homeOf(options));
  return existsSync(saved) ? saved : undefined;
}

/**
 * Whether `path` holds an api-key-lb config rather than a keypool one: a JSON object with one of its
 * fields and neither of the two ways a keypool config gives keys (`pools`, `tokens_file`). A `.json`
 * that does not parse is api-key-lb's too, so the error speaks of its fields.
 */
export function isApiKeyLbFile(path: string): boolean {
  if (!path.endsWith(".json")) return false;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === undefined;
  }
  if (!isObject(parsed) || "pools" in parsed || "tokens_file" in parsed) return false;
  return Object.keys(FILE_FIELDS).some((field) => field in parsed);
}

export type ApiKeyLbValues = Partial<Record<FileField, string>>;

/**
 * The file's values as variable text. Fields api-key-lb does not read are ignored, as it ignores them.
 * @throws ConfigError naming the file and the field; a key is never quoted.
 */
export function readApiKeyLbFile(path: string): ApiKeyLbValues {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "error";
    throw new ConfigError([`${path}: cannot read it (${code}) — check the path, --config or API_KEY_LB_CONFIG`]);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ConfigError([`${path}: not valid JSON (${(error as Error).message}) — fix the file, e.g. ${EXAMPLE}`]);
  }
  if (!isObject(parsed)) throw new ConfigError([`${path}: expected a JSON object such as ${EXAMPLE}`]);
  const issues: string[] = [];
  const values: ApiKeyLbValues = {};
  for (const field of Object.keys(FILE_FIELDS) as FileField[]) {
    const value = parsed[field];
    if (value === undefined || value === null) continue;
    const text = field === "keys" ? keysText(value) : field === "target" ? targetText(value) : numberText(value);
    if (typeof text === "string") values[field] = text;
    else issues.push(`${path}: "${field}" ${text.problem}`);
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return values;
}

/**
 * The environment with the file's values and then api-key-lb's defaults laid under it: each fills a
 * variable only where the environment leaves it unset or empty (api-key-lb treats an empty one as unset).
 * The state file goes to the service's state directory, so `keypool start` and the service share it.
 */
export function layerApiKeyLb(env: Env, file: ApiKeyLbValues | undefined, home: string): Env {
  const merged: Env = { ...env };
  const fill = (name: string, value: string | undefined) => {
    if (value !== undefined && !merged[name]) merged[name] = value;
  };
  for (const [field, variable] of Object.entries(FILE_FIELDS)) fill(variable, file?.[field as FileField]);
  for (const [variable, value] of Object.entries(API_KEY_LB_DEFAULTS)) fill(variable, value);
  fill("KEYPOOL_STATE_FILE", join(apiKeyLbStateDir(home), "keypool.db"));
  return merged;
}

/**
 * api-key-lb's settings as variables: `path` (a --config or -c), else the file findApiKeyLbFile finds,
 * laid under the environment with the defaults under both.
 * @throws ConfigError when the file cannot be read or has a field of the wrong kind.
 */
export function apiKeyLbSettings(options: ApiKeyLbLookup & { path?: string } = {}): { path?: string; env: Env } {
  const env = options.env ?? process.env;
  const cwd = resolve(options.cwd ?? process.cwd());
  const path = options.path !== undefined ? resolve(cwd, options.path) : findApiKeyLbFile({ ...options, env, cwd });
  const file = path === undefined ? undefined : readApiKeyLbFile(path);
  return { path, env: layerApiKeyLb(env, file, homeOf(options)) };
}

/**
 * The config api-key-lb's settings describe, built by env-config.ts from the layered variables.
 * @throws ConfigError when there are no keys, naming both ways to give them.
 */
export function configFromApiKeyLb(options: ApiKeyLbLookup & { path?: string } = {}): Config {
  const { path, env } = apiKeyLbSettings(options);
  if (!env.API_KEYS?.trim()) {
    throw new ConfigError([
      `no API keys: set API_KEYS=key1,key2${path ? ` or "keys" in ${path}` : ""}, ` +
        "or run keypool setup --keys key1,key2 --target URL (a keypool.yaml runs with keypool serve -c keypool.yaml)",
    ]);
  }
  return configFromEnv(env, resolve(options.cwd ?? process.cwd()));
}

/** The service's own state directory (systemd's StateDirectory for a user unit; Application Support on macOS). */
export function apiKeyLbStateDir(home: string, platform: string = process.platform): string {
  return platform === "darwin"
    ? join(home, "Library", "Application Support", API_KEY_LB_SERVICE)
    : join(home, ".local", "state", API_KEY_LB_SERVICE);
}

export function homeOf(options: { env?: Env; home?: string }): string {
  return options.home ?? ((options.env ?? process.env).HOME || homedir());
}

function keysText(value: unknown): string | { problem: string } {
  if (typeof value === "string") return value;
  if (!Array.isArray(value)) {
    return { problem: 'must be a comma-separated string or a list of strings, e.g. "keys": ["key1", "key2"]' };
  }
  for (const [index, item] of value.entries()) {
    if (typeof item !== "string") return { problem: `item ${index + 1} is not a string — write each key in quotes` };
    if (item.includes(",")) {
      return { problem: `item ${index + 1} contains a comma, which no API key has — split it into two items` };
    }
  }
  return value.join(",");
}

function targetText(value: unknown): string | { problem: string } {
  return typeof value === "string" ? value : { problem: 'must be a URL in quotes, e.g. "target": "https://api.z.ai"' };
}

function numberText(value: unknown): string | { problem: string } {
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  if (typeof value === "string" && value.trim() !== "" && Number.isFinite(Number(value))) return value.trim();
  return { problem: "must be a number, e.g. 4577 or 60000" };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
