import { describe, type Section } from "./_fields";
import { referenceTokenInScript, TOKEN_PLACEHOLDER } from "./_shell-script";
import { TOKEN_VARIABLE } from "./types";

/**
 * How a command check's `cmd` becomes what is spawned. A list is argv. A string with shell syntax is a script
 * for `/bin/sh -c`, as poolctl ran every string; a string without is split on whitespace into argv. The token
 * never becomes argv or shell text: a script's `{token}` turns into a reference to $KEYPOOL_TOKEN, quoted for
 * the place it stands in, and `{token}` anywhere else is refused at load.
 */

export const SHELL = "/bin/sh";

/** Characters the shell treats specially; a string without any of them means the same split on whitespace. */
const SHELL_SYNTAX = /[|&;<>()$`\\"'*?[\]#~{}\n\r]/;

export function hasShellSyntax(line: string): boolean {
  return SHELL_SYNTAX.test(line.replaceAll(TOKEN_PLACEHOLDER, ""));
}

/** A plain line's argv: words separated by spaces and tabs. */
export function splitPlainLine(line: string): string[] {
  return line.split(/[ \t]+/).filter((word) => word !== "");
}

/** What a command check runs: argv (a script becomes `/bin/sh -c SCRIPT`) and the variables it adds. */
export interface CheckCommand {
  cmd: string[];
  env: Record<string, string>;
}

const ARGV_TOKEN_HINT =
  "read the token from the KEYPOOL_TOKEN environment variable in the command instead, " +
  `or write cmd as one string for a shell, where {token} becomes "$${TOKEN_VARIABLE}"`;

/** Reads `cmd` (a list, a plain line or a shell script) and `env` of a command check. */
export function readCheckCommand(s: Section): CheckCommand {
  return { cmd: readCmd(s), env: readCommandEnv(s) };
}

function readCmd(s: Section): string[] {
  const { value, path } = s.entry("cmd")!;
  if (typeof value === "string") {
    if (hasShellSyntax(value)) {
      const script = referenceTokenInScript(value);
      if (typeof script === "string") return [SHELL, "-c", script];
      s.issues.add(path, script.error);
      return [];
    }
    const argv = splitPlainLine(value);
    if (argv.length === 0) s.issues.add(path, 'is empty — give the command to run, e.g. "./probe.sh --quiet"');
    else if (value.includes(TOKEN_PLACEHOLDER)) {
      const hint = `${ARGV_TOKEN_HINT} (quoting it, as in "{token}", makes cmd a shell string)`;
      s.issues.add(path, `{token} would be an argument of the command, which every user can read with ps — ${hint}`);
    }
    return argv;
  }
  if (!Array.isArray(value) || value.length === 0 || !value.every((a) => typeof a === "string")) {
    const example = '["./probe.sh", "--quiet"]';
    s.issues.add(path, `expected one string or a non-empty list of strings, e.g. ${example}, got ${describe(value)}`);
    return [];
  }
  value.forEach((arg: string, i) => {
    if (arg.includes(TOKEN_PLACEHOLDER)) {
      const problem = "{token} in a list is an argument of the command, which every user can read with ps";
      s.issues.add(`${path}[${i}]`, `${problem} — ${ARGV_TOKEN_HINT}`);
    }
  });
  return value;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The pool's own variables for its check command; values are never echoed (they may be credentials). */
function readCommandEnv(s: Section): Record<string, string> {
  const env = s.stringMap("env");
  for (const [name, value] of Object.entries(env)) {
    const path = `${s.keyPath("env")}.${name}`;
    if (!ENV_NAME.test(name)) {
      s.issues.add(path, "is not a variable name — use letters, digits and _, not starting with a digit");
    } else if (name.startsWith("KEYPOOL_")) {
      const why = `KEYPOOL_ names are keypool's own — the command gets the token as ${TOKEN_VARIABLE}`;
      s.issues.add(path, `${why}; rename the variable`);
    } else if (value.includes(TOKEN_PLACEHOLDER)) {
      s.issues.add(path, `{token} is not substituted in env — the command already gets the token as ${TOKEN_VARIABLE}`);
    }
  }
  return env;
}
