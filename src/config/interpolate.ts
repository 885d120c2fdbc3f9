import { type Issues, isMapping, joinPath } from "./_fields";

type Env = Record<string, string | undefined>;

const REFERENCE = /\$(\$)?\{([^}]*)\}/g;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SHELL_LINE_PATH = /(^|\.)check\.cmd$/;

/**
 * Replaces `${NAME}` in every string value of a parsed config tree with the environment
 * variable's value; `$${NAME}` stands for a literal `${NAME}`. Keys are left alone, and so is a check's
 * `cmd` written as one string.
 * Problems are added to `issues` under the value's path; substituted values are redacted from
 * every issue, so a later message about a bad value shows `${NAME}` instead of the secret.
 */
export function interpolateEnv(value: unknown, env: Env, issues: Issues, path = ""): unknown {
  // A check's cmd line is a shell script: its ${NAME} is the shell's, expanded from the probe's own small
  // environment — never from keypool's, which holds its secrets. ($${NAME} still means ${NAME}, as before.)
  if (typeof value === "string" && SHELL_LINE_PATH.test(path)) return value.replaceAll("$${", "${");
  if (typeof value === "string") return interpolateString(value, env, issues, path);
  if (Array.isArray(value)) return value.map((v, i) => interpolateEnv(v, env, issues, `${path}[${i}]`));
  if (isMapping(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolateEnv(v, env, issues, joinPath(path, k));
    return out;
  }
  return value;
}

function interpolateString(text: string, env: Env, issues: Issues, path: string): string {
  return text.replace(REFERENCE, (_match, escaped: string | undefined, name: string) => {
    if (escaped) return `\${${name}}`;
    if (!NAME.test(name)) {
      issues.add(
        path,
        `"\${${name}}" is not a valid variable reference — use \${NAME} with letters, digits and _, or $\${…} for a literal`,
      );
      return "";
    }
    const resolved = env[name];
    if (resolved === undefined) {
      issues.add(
        path,
        `environment variable ${name} is not set — export it, or write $\${${name}} for a literal "\${${name}}"`,
      );
      return "";
    }
    issues.redact(resolved, `\${${name}}`);
    return resolved;
  });
}
