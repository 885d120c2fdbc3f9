import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { ConfigError } from "../config/errors";
import type { Config } from "../config/types";
import { type TokenCipher, createTokenCipher, parseMasterKey } from "./token-cipher";

type Env = Record<string, string | undefined>;

export const MASTER_KEY_ENV = "KEYPOOL_MASTER_KEY";

/**
 * The cipher for token values at rest, or undefined when none is configured.
 * `KEYPOOL_MASTER_KEY` takes precedence over `store.encryption_key_file`, so one run (a re-encrypt,
 * a test) can override the file without editing the config.
 * @throws ConfigError naming the variable or file when the key cannot be read or is unusable.
 */
export function loadTokenCipher(config: Pick<Config, "store">, env: Env = process.env): TokenCipher | undefined {
  const fromEnv = env[MASTER_KEY_ENV];
  if (fromEnv !== undefined && fromEnv !== "") return cipherFrom(fromEnv, MASTER_KEY_ENV);
  const file = config.store?.encryptionKeyFile;
  return file === undefined ? undefined : readKeyFile(file, "store.encryption_key_file");
}

/** A cipher from a key file (the `--new-key-file` of a re-encrypt); `label` names the setting in messages. */
export function readKeyFile(path: string, label: string): TokenCipher {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    const reason = (error as { code?: string }).code ?? String(error);
    throw new ConfigError([
      `${label}: cannot read "${file}" (${reason}) — create it with e.g. openssl rand -hex 32 > ${file}`,
    ]);
  }
  return cipherFrom(text, `${label} (${file})`);
}

function cipherFrom(text: string, source: string): TokenCipher {
  try {
    return createTokenCipher(parseMasterKey(text), source);
  } catch (error) {
    // The message describes the value's shape only, never the value.
    throw new ConfigError([`${source}: ${(error as Error).message}`]);
  }
}
