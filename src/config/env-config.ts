import { resolve } from "node:path";
import { ConfigError } from "./errors";
import { readConfigTree } from "./load";
import { UNSENDABLE_TOKEN, deriveKeyId, isSendableToken } from "../pool/token-rules";
import type { Config, KeySpec } from "./types";
import { parseDecimal } from "../pool/bounds";

type Env = Record<string, string | undefined>;

/**
 * Pools defined by environment variables alone, for a start without any file:
 *
 * - `KEYPOOL_POOL_<NAME>_KEYS=k1,k2` with optional `_BASE_URL` (turns the pool's gateway on), `_MODELS`,
 *   `_ROTATION` and `_COOLDOWN_SEC` (a rest after every take; none by default); `<NAME>` becomes the pool
 *   name, lowercased, `_` → `-`.
 * - Key Pool Manager's: `<MODEL>_KEYS` (`GPT_4_KEYS` → pool `gpt-4` serving model `gpt-4`), `KEY_POOL_HOST`,
 *   `KEY_POOL_PORT` (the API; 8769 by default when such pools are configured) and `HEALTH_CHECK_INTERVAL`
 *   (ms: the pools' `recheck_interval_sec`).
 * - api-key-lb's: `API_KEYS` (pool `default`, whose gateway forwards to `TARGET`, default
 *   https://api.openai.com, on `PORT`, default 4577), `TARGET` (base URL of every pool without its own),
 *   `PORT` (the gateways' port, or the API's when no pool has a gateway), `COOLDOWN_MS` (the rest after a
 *   429 without Retry-After) and `SESSION_TTL_MS` (how long a sticky session keeps its key).
 * - `KEYPOOL_HOST`, `KEYPOOL_ADDR`, `KEYPOOL_API_KEY`, `KEYPOOL_STATE_FILE` (default keypool.db in `cwd`),
 *   `KEYPOOL_MASTER_KEY_FILE` (`store.encryption_key_file`; `KEYPOOL_MASTER_KEY` itself is read by the store).
 *
 * A pool from the environment rests a key only when told to: the tools these variables come from hand
 * the same key out again at once, and their users count on it.
 */

const POOL_VAR = /^KEYPOOL_POOL_([A-Z0-9_]+?)_(KEYS|BASE_URL|MODELS|ROTATION|COOLDOWN_SEC)$/;
const MODEL_KEYS_VAR = /^([A-Z0-9][A-Z0-9_]*)_KEYS$/;
/** `*_KEYS` variables that other software sets and that are not API keys. */
const NOT_MODEL_KEYS = new Set([
  "API_KEYS",
  "KEY_POOL_KEYS",
  "GPG_KEYS",
  "PGP_KEYS",
  "SSH_KEYS",
  "AUTHORIZED_KEYS",
  "TRUSTED_KEYS",
]);

/** Millisecond variables and their bounds: a value outside them is a mistake, not a wish. */
export const MS_VARS = {
  COOLDOWN_MS: { min: 1, max: 86_400_000, range: "1 to 86400000 (24 h)" },
  SESSION_TTL_MS: { min: 1000, max: 604_800_000, range: "1000 (1 s) to 604800000 (7 days)" },
  HEALTH_CHECK_INTERVAL: { min: 1000, max: 86_400_000, range: "1000 (1 s) to 86400000 (24 h)" },
} as const;

/** Defaults of the tools the variables come from. */
const KEY_POOL_MANAGER_PORT = 8769;
const API_KEY_LB_PORT = 4577;
const API_KEY_LB_TARGET = "https://api.openai.com";

type PoolField = "BASE_URL" | "MODELS" | "ROTATION" | "COOLDOWN_SEC";

interface EnvPool {
  /** The variable the keys came from. */
  keysVar: string;
  keys: string;
  fields: Partial<Record<PoolField, { name: string; value: string }>>;
  /** Models the `<MODEL>_KEYS` convention implies. */
  models?: string[];
}

/** Whether the environment defines at least one pool (and so can stand in for a config file). */
export function envDefinesPools(env: Env): boolean {
  return Object.keys(env).some(
    (name) =>
      env[name] !== undefined && (POOL_VAR.exec(name)?.[2] === "KEYS" || isModelKeysVar(name) || name === "API_KEYS"),
  );
}

/**
 * The config the environment describes.
 * @throws ConfigError whose every message names the variable at fault; key values are never shown.
 */
export function configFromEnv(env: Env, cwd: string = process.cwd()): Config {
  const issues: string[] = [];
  const pools = collectPools(env, issues);
  if (pools.size === 0 && issues.length === 0) {
    issues.push(
      "no pool is defined in the environment — set e.g. KEYPOOL_POOL_DEFAULT_KEYS=key1,key2 (or API_KEYS=key1,key2)",
    );
  }
  // Which variable each setting came from, so the validator's messages can name it.
  const origin = new Map<string, string>();
  const keys: Record<string, KeySpec[]> = {};
  const poolTree: Record<string, unknown> = {};
  const host = readHost(env, issues);
  const port = readPort(env, "PORT", issues);
  const apiPort = readPort(env, "KEY_POOL_PORT", issues);
  const cooldownMs = readMs(env, "COOLDOWN_MS", issues);
  const sessionTtlMs = readMs(env, "SESSION_TTL_MS", issues);
  const checkMs = readMs(env, "HEALTH_CHECK_INTERVAL", issues);
  const fromApiKeyLb = pools.get("default")?.keysVar === "API_KEYS";
  const gatewayPort = port?.value ?? (fromApiKeyLb ? API_KEY_LB_PORT : 8080);

  for (const [name, pool] of pools) {
    keys[name] = parseKeys(pool.keysVar, pool.keys, issues);
    const body: Record<string, unknown> = { cooldown_sec: 0 };
    const at = (field: string, variable: string) => origin.set(`pools.${name}.${field}`, variable);
    if (pool.fields.ROTATION) {
      body.rotation = pool.fields.ROTATION.value;
      at("rotation", pool.fields.ROTATION.name);
    }
    if (pool.fields.COOLDOWN_SEC) {
      body.cooldown_sec = numberOrText(pool.fields.COOLDOWN_SEC.value);
      at("cooldown_sec", pool.fields.COOLDOWN_SEC.name);
    }
    // api-key-lb rests a throttled key for exactly COOLDOWN_MS, every time: a flat ladder.
    if (cooldownMs !== undefined) {
      body.backoff = { rate_limit: { base_sec: cooldownMs / 1000, step_sec: 0, max_sec: cooldownMs / 1000 } };
    }
    if (checkMs !== undefined) body.recheck_interval_sec = checkMs / 1000;
    if (sessionTtlMs !== undefined) body.session = { ttl_sec: sessionTtlMs / 1000 };
    const apiKeyLbPool = name === "default" && fromApiKeyLb;
    const target = env.TARGET ? { name: "TARGET", value: env.TARGET } : undefined;
    const lbDefault = apiKeyLbPool ? { name: "API_KEYS", value: API_KEY_LB_TARGET } : undefined;
    const baseUrl = pool.fields.BASE_URL ?? target ?? lbDefault;
    if (baseUrl) {
      const models = pool.fields.MODELS ? splitList(pool.fields.MODELS.value) : pool.models;
      const listen = joinAddr(host.value, gatewayPort);
      body.upstream = { enabled: true, base_url: baseUrl.value, listen, ...(models ? { models } : {}) };
      at("upstream.base_url", baseUrl.name);
      at("upstream.listen", port ? "PORT" : host.variable);
      if (pool.fields.MODELS) at("upstream.models", pool.fields.MODELS.name);
    }
    poolTree[name] = body;
  }

  const anyGateway = Object.values(poolTree).some((body) => (body as { upstream?: unknown }).upstream);
  const fromKeyPoolManager = [...pools.values()].some((p) => p.models !== undefined);
  const api = apiAddr(env, { host, apiPort, port: anyGateway ? undefined : port, fromKeyPoolManager });
  origin.set("server.addr", api.variable);
  const tree: Record<string, unknown> = {
    server: { addr: api.addr, ...(env.KEYPOOL_API_KEY ? { api_key: env.KEYPOOL_API_KEY } : {}) },
    state_file: env.KEYPOOL_STATE_FILE || "keypool.db",
    ...(env.KEYPOOL_MASTER_KEY_FILE ? { store: { encryption_key_file: env.KEYPOOL_MASTER_KEY_FILE } } : {}),
    pools: poolTree,
  };
  origin.set("store.encryption_key_file", "KEYPOOL_MASTER_KEY_FILE");
  origin.set("state_file", "KEYPOOL_STATE_FILE");
  if (issues.length > 0) throw new ConfigError(issues);

  try {
    return readConfigTree(tree, { baseDir: resolve(cwd), keys });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new ConfigError(error.issues.map((issue) => nameTheVariable(issue, origin)));
  }
}

interface Given<T> {
  value: T;
  variable: string;
}

/** KEYPOOL_HOST, or Key Pool Manager's KEY_POOL_HOST; loopback unless one says otherwise. */
function readHost(env: Env, issues: string[]): Given<string> {
  const own = env.KEYPOOL_HOST || undefined;
  const kpm = env.KEY_POOL_HOST || undefined;
  if (own && kpm && own !== kpm) {
    const [said, other] = [JSON.stringify(kpm.slice(0, 64)), JSON.stringify(own.slice(0, 64))];
    issues.push(`KEY_POOL_HOST: says ${said} but KEYPOOL_HOST says ${other} — set only one (empty counts as unset)`);
  }
  if (own) return { value: own, variable: "KEYPOOL_HOST" };
  if (kpm) return { value: kpm, variable: "KEY_POOL_HOST" };
  return { value: "127.0.0.1", variable: "KEYPOOL_HOST" };
}

/**
 * The API's address: KEYPOOL_ADDR, else the host with KEY_POOL_PORT, PORT (when no pool has a gateway),
 * 8769 (when Key Pool Manager's variables define pools) or 8787.
 */
function apiAddr(
  env: Env,
  given: { host: Given<string>; apiPort?: Given<number>; port?: Given<number>; fromKeyPoolManager: boolean },
): { addr: string; variable: string } {
  if (env.KEYPOOL_ADDR !== undefined) return { addr: env.KEYPOOL_ADDR, variable: "KEYPOOL_ADDR" };
  const port = given.apiPort ?? given.port;
  if (port) return { addr: joinAddr(given.host.value, port.value), variable: port.variable };
  const fallback = given.fromKeyPoolManager ? KEY_POOL_MANAGER_PORT : 8787;
  return { addr: joinAddr(given.host.value, fallback), variable: given.host.variable };
}

function joinAddr(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

function collectPools(env: Env, issues: string[]): Map<string, EnvPool> {
  const pools = new Map<string, EnvPool>();
  const fieldsByPool = new Map<string, EnvPool["fields"]>();
  const add = (name: string, variable: string, keys: string, models?: string[]) => {
    const other = pools.get(name);
    if (other) {
      issues.push(`${variable}: defines pool "${name}", which ${other.keysVar} already defines — keep one of the two`);
      return;
    }
    pools.set(name, { keysVar: variable, keys, fields: {}, models });
  };
  for (const [variable, value] of Object.entries(env).sort(([a], [b]) => a.localeCompare(b))) {
    if (value === undefined) continue;
    const pool = POOL_VAR.exec(variable);
    if (pool) {
      const name = poolName(pool[1]!, variable, issues);
      if (name === undefined) continue;
      if (pool[2] === "KEYS") add(name, variable, value);
      else fieldsByPool.set(name, { ...fieldsByPool.get(name), [pool[2]!]: { name: variable, value } });
    } else if (variable === "API_KEYS") {
      add("default", variable, value);
    } else if (isModelKeysVar(variable)) {
      const name = poolName(MODEL_KEYS_VAR.exec(variable)![1]!, variable, issues);
      if (name !== undefined) add(name, variable, value, [name]);
    }
  }
  for (const [name, fields] of fieldsByPool) {
    const pool = pools.get(name);
    if (pool) pool.fields = fields;
    else
      for (const field of Object.values(fields))
        issues.push(`${field.name}: there is no ${keysVarOf(field.name)} — set the pool's keys too, or unset this`);
  }
  return pools;
}

function isModelKeysVar(name: string): boolean {
  return MODEL_KEYS_VAR.test(name) && !name.startsWith("KEYPOOL_") && !NOT_MODEL_KEYS.has(name);
}

function keysVarOf(fieldVar: string): string {
  return fieldVar.replace(/_(BASE_URL|MODELS|ROTATION|COOLDOWN_SEC)$/, "_KEYS");
}

function poolName(raw: string, variable: string, issues: string[]): string | undefined {
  const name = raw.toLowerCase().replaceAll("_", "-");
  if (/^[a-z0-9][a-z0-9_-]{0,63}$/.test(name)) return name;
  issues.push(`${variable}: "${name}" is not a pool name — use letters and digits, e.g. KEYPOOL_POOL_OPENAI_KEYS`);
  return undefined;
}

/** Comma-separated tokens. Messages say which item is wrong by position, never what it holds. */
function parseKeys(variable: string, value: string, issues: string[]): KeySpec[] {
  const keys: KeySpec[] = [];
  const firstAt = new Map<string, number>();
  value.split(",").forEach((raw, index) => {
    const token = raw.trim();
    const item = index + 1;
    if (token === "") return;
    if (/\s/.test(token)) {
      issues.push(`${variable}: item ${item} contains whitespace — separate keys with commas only`);
      return;
    }
    if (!isSendableToken(token)) {
      issues.push(`${variable}: item ${item} ${UNSENDABLE_TOKEN}`);
      return;
    }
    const first = firstAt.get(token);
    if (first !== undefined) {
      issues.push(`${variable}: item ${item} is the same key as item ${first} — remove one`);
      return;
    }
    firstAt.set(token, item);
    keys.push({ id: deriveKeyId(token), token, weight: 1 });
  });
  if (keys.length === 0 && !issues.some((i) => i.startsWith(`${variable}:`))) {
    issues.push(`${variable}: holds no keys — give one or more, separated by commas`);
  }
  return keys;
}

function readPort(env: Env, variable: "PORT" | "KEY_POOL_PORT", issues: string[]): Given<number> | undefined {
  const text = env[variable];
  if (text === undefined || text === "") return undefined;
  if (/^\d{1,5}$/.test(text.trim()) && Number(text) <= 65535) return { value: Number(text), variable };
  issues.push(`${variable}: expected a port number 0–65535, got ${shownIfNumeric(text)}`);
  return undefined;
}

/** Whole milliseconds within MS_VARS's bounds; an empty variable counts as unset. */
function readMs(env: Env, variable: keyof typeof MS_VARS, issues: string[]): number | undefined {
  const text = env[variable];
  if (text === undefined || text.trim() === "") return undefined;
  const { min, max, range } = MS_VARS[variable];
  const ms = Number(text);
  if (/^\d+$/.test(text.trim()) && ms >= min && ms <= max) return ms;
  issues.push(`${variable}: expected whole milliseconds from ${range}, got ${shownIfNumeric(text)}`);
  return undefined;
}

/**
 * A value for a message: quoted whole when short or number-like, else not at all — never a slice of it,
 * since a long value here is likelier a key set one variable off.
 */
function shownIfNumeric(value: string): string {
  const text = value.trim();
  return text.length <= 8 || /^[\d.eE+-]{1,24}$/.test(text)
    ? JSON.stringify(text)
    : `a value of ${text.length} characters`;
}

/** A decimal number, or the text as given (then refused by the setting's reader, naming the variable). */
function numberOrText(value: string): number | string {
  return parseDecimal(value) ?? value;
}

function splitList(value: string): string[] {
  return value
    .split(",")
    .map((v) => v.trim())
    .filter(Boolean);
}

/** `pools.gpt-4.rotation: …` → `KEYPOOL_POOL_GPT_4_ROTATION: …`, for every setting the environment gave. */
function nameTheVariable(issue: string, origin: Map<string, string>): string {
  const colon = issue.indexOf(": ");
  const path = colon > 0 ? issue.slice(0, colon) : "";
  for (let p = path; p; p = p.includes(".") ? p.slice(0, p.lastIndexOf(".")) : "") {
    const variable = origin.get(p);
    if (variable) return `${variable}${path === p ? "" : ` (${path})`}${issue.slice(colon)}`;
  }
  return issue;
}
