import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { configFromEnv, envDefinesPools } from "./env-config";
import { ConfigError } from "./errors";
import { loadConfig } from "./load";
import type { Config } from "./types";

type Env = Record<string, string | undefined>;

export const DEFAULT_CONFIG_FILE = "keypool.yaml";

/**
 * The config a command runs with: the file given with -c; else `keypool.yaml` in `cwd`; else the
 * pools the environment defines (see env-config.ts); else the file `KEYPOOL_DEFAULT_CONFIG` names.
 * That last one is for images that ship an example config: a `docker run -e GPT_4_KEYS=…` must win over it.
 * @throws ConfigError saying how to configure keypool when there is none of these.
 */
export function findConfig(options: { path?: string; env?: Env; cwd?: string } = {}): Config {
  const env = options.env ?? process.env;
  const cwd = resolve(options.cwd ?? process.cwd());
  if (options.path !== undefined) return loadConfig(resolve(cwd, options.path), env);
  const nearby = join(cwd, DEFAULT_CONFIG_FILE);
  if (existsSync(nearby)) return loadConfig(nearby, env);
  if (envDefinesPools(env)) return configFromEnv(env, cwd);
  if (env.KEYPOOL_DEFAULT_CONFIG) return loadConfig(resolve(cwd, env.KEYPOOL_DEFAULT_CONFIG), env);
  throw new ConfigError([
    `no configuration: no -c PATH was given, there is no ${DEFAULT_CONFIG_FILE} in ${cwd}, and the environment defines no pool — ` +
      `write ${DEFAULT_CONFIG_FILE} (see keypool.example.yaml), pass -c PATH, or set KEYPOOL_POOL_<NAME>_KEYS=key1,key2`,
  ]);
}
