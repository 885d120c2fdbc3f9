import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { apiKeyLbConfigPath, configFromApiKeyLb, homeOf, isApiKeyLbFile } from "./api-key-lb";
import { configFromEnv, envDefinesPools } from "./env-config";
import { ConfigError } from "./errors";
import { loadConfig } from "./load";
import type { Config } from "./types";

type Env = Record<string, string | undefined>;

export const DEFAULT_CONFIG_FILE = "keypool.yaml";

/**
 * The config a command runs with: the file given with -c (keypool's, or api-key-lb's JSON); else the one
 * API_KEY_LB_CONFIG names; else `keypool.yaml` in `cwd`; else api-key-lb's settings (`./api-key-lb.json`,
 * `API_KEYS`, or `~/.config/api-key-lb/config.json` when the environment defines no other pool); else
 * the pools the environment defines (see env-config.ts and api-key-lb.ts); else the file `KEYPOOL_DEFAULT_CONFIG`
 * names. That last one is for images that ship an example config: a `docker run -e GPT_4_KEYS=…` must win over it.
 * @throws ConfigError saying how to configure keypool when there is none of these.
 */
export function findConfig(options: { path?: string; env?: Env; cwd?: string; home?: string } = {}): Config {
  const env = options.env ?? process.env;
  const cwd = resolve(options.cwd ?? process.cwd());
  const apiKeyLb = (path?: string) => configFromApiKeyLb({ path, env, cwd, home: options.home });
  if (options.path !== undefined) {
    const path = resolve(cwd, options.path);
    return isApiKeyLbFile(path) ? apiKeyLb(path) : loadConfig(path, env);
  }
  if (env.API_KEY_LB_CONFIG) return apiKeyLb();
  const nearby = join(cwd, DEFAULT_CONFIG_FILE);
  if (existsSync(nearby)) return loadConfig(nearby, env);
  if (existsSync(join(cwd, "api-key-lb.json")) || env.API_KEYS) return apiKeyLb();
  // The saved api-key-lb config stands in only for an environment that says nothing else.
  if (!envDefinesPools(env) && existsSync(apiKeyLbConfigPath(homeOf({ env, home: options.home })))) return apiKeyLb();
  if (envDefinesPools(env)) return configFromEnv(env, cwd);
  if (env.KEYPOOL_DEFAULT_CONFIG) return loadConfig(resolve(cwd, env.KEYPOOL_DEFAULT_CONFIG), env);
  throw new ConfigError([
    `no configuration: no -c PATH was given, there is no ${DEFAULT_CONFIG_FILE} in ${cwd}, and the environment defines no pool — ` +
      `write ${DEFAULT_CONFIG_FILE} (see keypool.example.yaml), pass -c PATH, or set KEYPOOL_POOL_<NAME>_KEYS=key1,key2`,
  ]);
}
