import { TOKEN_VARIABLE } from "../config/types";

/** The variable naming the key a command probe checks (its id, never a secret). */
export const KEY_ID_VARIABLE = "KEYPOOL_KEY_ID";

/**
 * What a command probe inherits from keypool's own environment: enough to find programs, write temp
 * files and read text, and nothing else. keypool's environment holds its master key, its API key,
 * database URLs and whole pools of keys; a probe gets none of them, by leaving everything else out.
 */
export const BASE_VARIABLES = ["PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR"] as const;
const BASE_PREFIXES = ["LC_"] as const;
const FALLBACK_PATH = "/usr/local/bin:/usr/bin:/bin";

type Env = Record<string, string | undefined>;

/**
 * A command probe's whole environment: the base taken from `from`, then the pool's `check.env`,
 * then the token and the key's id (which nothing above can replace).
 */
export function probeEnvironment(
  own: Record<string, string> | undefined,
  token: string,
  keyId: string | undefined,
  from: Env = process.env,
): Record<string, string> {
  const env: Record<string, string> = { PATH: FALLBACK_PATH };
  for (const [name, value] of Object.entries(from)) {
    if (value === undefined) continue;
    if ((BASE_VARIABLES as readonly string[]).includes(name) || BASE_PREFIXES.some((p) => name.startsWith(p))) {
      env[name] = value;
    }
  }
  Object.assign(env, own);
  env[TOKEN_VARIABLE] = token;
  if (keyId !== undefined) env[KEY_ID_VARIABLE] = keyId;
  return env;
}
