import { resolve } from "node:path";
import { ConfigError } from "./errors";
import { readConfigTree } from "./load";
import { UNSENDABLE_TOKEN, deriveKeyId, isSendableToken } from "./tokens-file";
import type { Config, KeySpec } from "./types";
import { parseDecimal } from "../pool/bounds";

type Env = Record<string, string | undefined>;

/**
 * Pools defined by environment variables alone, for a start without any file:
 *
 * - `KEYPOOL_POOL_<NAME>_KEYS=k1,k2` with optional `_BASE_URL` (turns the pool's gateway on), `_MODELS`,
 *   `_ROTATION` and `_COOLDOWN_SEC`; `<NAME>` becomes the pool name, lowercased, `_` → `-`.
 * - For people coming from similar tools: `<MODEL>_KEYS` (`GPT_4_KEYS` → pool `gpt-4` serving model
 *   `gpt-4`), `API_KEYS` (pool `default`), `TARGET` (base URL of every pool without its own),
 *   `PORT` (the gateway's port, or the API's when no pool has a base URL), `COOLDOWN_MS`.
 * - `KEYPOOL_HOST`, `KEYPOOL_ADDR`, `KEYPOOL_API_KEY`, `KEYPOOL_STATE_FILE` (default keypool.db in `cwd`),
 *   `KEYPOOL_MASTER_KEY_FILE` (`store.encryption_key_file`; `KEYPOOL_MASTER_KEY` itself is read by the store).
 */

const POOL_VAR = /^KEYPOOL_POOL_([A-Z0-9_]+?)_(KEYS|BASE_URL|MODELS|ROTATION|COOLDOWN_SEC)$/;
const MODEL_KEYS_VAR = /^([A-Z0-9][A-Z0-9_]*)_KEYS$/;
/** `*_KEYS` variables that other software sets and that are not API keys. */
const NOT_MODEL_KEYS = new Set(["API_KEYS", "GPG_KEYS", "PGP_KEYS", "SSH_KEYS", "AUTHORIZED_KEYS", "TRUSTED_KEYS"]);

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
  return Object.keys(env).some((name) => env[name] !== undefined && (POOL_VAR.exec(name)?.[2] === "KEYS" || isModelKeysVar(name) || name === "API_KEYS"));
}

/**
 * The config the environment describes.
 * @throws ConfigError whose every message names the variable at fault; key values are never shown.
 */
export function configFromEnv(env: Env, cwd: string = process.cwd()): Config {
  const issues: string[] = [];
  const pools = collectPools(env, issues);
  if (pools.size === 0 && issues.length === 0) {
    issues.push("no pool is defined in the environment — set e.g. KEYPOOL_POOL_DEFAULT_KEYS=key1,key2 (or API_KEYS=key1,key2)");
  }
  // Which variable each setting came from, so the validator's messages can name it.
  const origin = new Map<string, string>();
  const keys: Record<string, KeySpec[]> = {};
  const poolTree: Record<string, unknown> = {};
  const host = env.KEYPOOL_HOST || "127.0.0.1";
  const port = readPort(env, issues);
  const anyBaseUrl = [...pools.values()].some((p) => p.fields.BASE_URL) || Boolean(env.TARGET);

  for (const [name, pool] of pools) {
    keys[name] = parseKeys(pool.keysVar, pool.keys, issues);
    const body: Record<string, unknown> = {};
    const at = (field: string, variable: string) => origin.set(`pools.${name}.${field}`, variable);
    if (pool.fields.ROTATION) {
      body.rotation = pool.fields.ROTATION.value;
      at("rotation", pool.fields.ROTATION.name);
    }
    const cooldown = pool.fields.COOLDOWN_SEC;
    if (cooldown) {
      body.cooldown_sec = numberOrText(cooldown.value);
      at("cooldown_sec", cooldown.name);
    } else if (env.COOLDOWN_MS !== undefined) {
      body.cooldown_sec = readCooldownMs(env.COOLDOWN_MS, issues);
    }
    const baseUrl = pool.fields.BASE_URL ?? (env.TARGET ? { name: "TARGET", value: env.TARGET } : undefined);
    if (baseUrl) {
      const models = pool.fields.MODELS ? splitList(pool.fields.MODELS.value) : pool.models;
      body.upstream = { enabled: true, base_url: baseUrl.value, listen: `${host}:${port ?? 8080}`, ...(models ? { models } : {}) };
      at("upstream.base_url", baseUrl.name);
      at("upstream.listen", port === undefined ? "KEYPOOL_HOST" : "PORT");
      if (pool.fields.MODELS) at("upstream.models", pool.fields.MODELS.name);
    }
    poolTree[name] = body;
  }

  const apiAddr = env.KEYPOOL_ADDR ?? (port !== undefined && !anyBaseUrl ? `${host}:${port}` : `${host}:8787`);
  origin.set("server.addr", env.KEYPOOL_ADDR !== undefined ? "KEYPOOL_ADDR" : port !== undefined && !anyBaseUrl ? "PORT" : "KEYPOOL_HOST");
  const tree: Record<string, unknown> = {
    server: { addr: apiAddr, ...(env.KEYPOOL_API_KEY ? { api_key: env.KEYPOOL_API_KEY } : {}) },
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
    else for (const field of Object.values(fields)) issues.push(`${field.name}: there is no ${keysVarOf(field.name)} — set the pool's keys too, or unset this`);
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

function readPort(env: Env, issues: string[]): number | undefined {
  if (env.PORT === undefined || env.PORT === "") return undefined;
  const port = Number(env.PORT);
  if (Number.isInteger(port) && port >= 0 && port <= 65535) return port;
  issues.push(`PORT: expected a port number 0–65535, got ${shownIfNumeric(env.PORT)}`);
  return undefined;
}

function readCooldownMs(value: string, issues: string[]): number | undefined {
  const ms = parseDecimal(value);
  // The seconds it becomes are bounded where cooldown_sec is read.
  if (ms !== undefined && ms >= 0) return ms / 1000;
  issues.push(`COOLDOWN_MS: expected a number of milliseconds ≥ 0, got ${shownIfNumeric(value)}`);
  return undefined;
}

/**
 * A value for a message: quoted whole when short or number-like, else not at all — never a slice of it,
 * since a long value here is likelier a key set one variable off.
 */
function shownIfNumeric(value: string): string {
  const text = value.trim();
  return text.length <= 8 || /^[\d.eE+-]{1,24}$/.test(text) ? JSON.stringify(text) : `a value of ${text.length} characters`;
}

/** A decimal number, or the text as given (then refused by the setting's reader, naming the variable). */
function numberOrText(value: string): number | string {
  return parseDecimal(value) ?? value;
}

function splitList(value: string): string[] {
  return value.split(",").map((v) => v.trim()).filter(Boolean);
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
