import { describe, type Section } from "./_fields";
import { TOKEN_VARIABLE } from "./types";

/**
 * How a command check's `cmd` becomes what is spawned. A list is argv. A string with shell syntax is a script
 * for `/bin/sh -c`, as poolctl ran every string; a string without is split on whitespace into argv. The token
 * never becomes argv or shell text: a script's `{token}` turns into a reference to $KEYPOOL_TOKEN, quoted for
 * the place it stands in, and `{token}` anywhere else is refused at load.
 */

export const TOKEN_PLACEHOLDER = "{token}";
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

type Quoting = "plain" | "single" | "double";

/** Where the scanner is: a quote, or an unquoted stretch that some bracket may close. */
interface Frame {
  quoting: Quoting;
  /** What ends a nested stretch: `)` of `$(`, `}` of `${`, a backquote; none at the top. */
  closer?: ")" | "}" | "`";
  /** Unclosed `(` (or `{`) inside this stretch, so a `)` (or `}`) of theirs does not end it. */
  depth: number;
}

/** The token reference that means exactly the token, unsplit and unglobbed, in each quoting. */
const REFERENCE: Record<Quoting, string> = {
  plain: `"$${TOKEN_VARIABLE}"`,
  double: `\${${TOKEN_VARIABLE}}`,
  // A single-quoted string cannot expand anything: close it, insert the quoted reference, reopen it.
  single: `'"$${TOKEN_VARIABLE}"'`,
};

/**
 * Rewrites a shell script so that every `{token}` is a quoted reference to $KEYPOOL_TOKEN, right for the
 * quoting it stands in (unquoted, '…', "…", inside `$(…)`, `${…}`, backquotes, a here-document).
 * Returns an error message for a script whose quoting does not close, or where no reference can work.
 */
export function referenceTokenInScript(script: string): string | { error: string } {
  const stack: Frame[] = [{ quoting: "plain", depth: 0 }];
  const pendingHeredocs: Heredoc[] = [];
  let out = "";
  let i = 0;
  while (i < script.length) {
    const frame = stack.at(-1)!;
    if (script.startsWith(TOKEN_PLACEHOLDER, i)) {
      out += REFERENCE[frame.quoting];
      i += TOKEN_PLACEHOLDER.length;
      continue;
    }
    const ch = script[i]!;
    const next = script[i + 1];
    if (frame.quoting === "single") {
      if (ch === "'") stack.pop();
      out += ch;
      i++;
      continue;
    }
    // Inside "…" a backslash escapes only these; elsewhere it escapes any character.
    if (ch === "\\" && (frame.quoting === "plain" || (next !== undefined && '$`"\\\n'.includes(next)))) {
      out += script.slice(i, i + 2);
      i += 2;
      continue;
    }
    if (ch === "$" && next === "(") {
      stack.push({ quoting: "plain", closer: ")", depth: 0 });
      out += "$(";
      i += 2;
      continue;
    }
    if (ch === "$" && next === "{") {
      // Inside `${…}` the word keeps the quoting around it.
      stack.push({ quoting: frame.quoting, closer: "}", depth: 0 });
      out += "${";
      i += 2;
      continue;
    }
    if (ch === "`") {
      if (frame.closer === "`") stack.pop();
      else stack.push({ quoting: "plain", closer: "`", depth: 0 });
      out += ch;
      i++;
      continue;
    }
    if (frame.closer === ")" || frame.closer === "}") {
      const [open, close] = frame.closer === ")" ? ["(", ")"] : ["{", "}"];
      if (ch === open) frame.depth++;
      if (ch === close && frame.depth-- === 0) {
        stack.pop();
        out += ch;
        i++;
        continue;
      }
    }
    if (frame.quoting === "double") {
      // A quote inside "${…}" opens a nested one; anywhere else it ends the string.
      if (ch === '"' && frame.closer) stack.push({ quoting: "double", depth: 0 });
      else if (ch === '"') stack.pop();
      out += ch;
      i++;
      continue;
    }
    // Unquoted from here on.
    if (ch === "'" || ch === '"') {
      stack.push({ quoting: ch === "'" ? "single" : "double", depth: 0 });
    } else if (ch === "#" && startsWord(script, i)) {
      const end = script.indexOf("\n", i);
      const stop = end === -1 ? script.length : end;
      out += script.slice(i, stop);
      i = stop;
      continue;
    } else if (ch === "<" && next === "<" && script[i + 2] !== "<") {
      const heredoc = readHeredocStart(script, i + 2);
      if (heredoc) {
        pendingHeredocs.push(heredoc);
        out += script.slice(i, heredoc.end);
        i = heredoc.end;
        continue;
      }
    } else if (ch === "\n" && pendingHeredocs.length > 0) {
      const bodies = rewriteHeredocBodies(script, i + 1, pendingHeredocs.splice(0));
      if ("error" in bodies) return bodies;
      out += `\n${bodies.text}`;
      i = bodies.end;
      continue;
    }
    out += ch;
    i++;
  }
  const open = stack.at(-1)!;
  if (open.quoting === "single") return { error: "has an unclosed ' quote — close it" };
  if (open.quoting === "double") return { error: 'has an unclosed " quote — close it' };
  if (open.closer) return { error: `has an unclosed ${open.closer === "`" ? "`" : open.closer === ")" ? "$(" : "${"} — close it` };
  if (pendingHeredocs.length > 0) return { error: "starts a here-document (<<) with no body — add the lines and the end word" };
  return out;
}

/** `#` starts a comment only at the start of a word. */
function startsWord(script: string, i: number): boolean {
  return i === 0 || /[\s;&|()]/.test(script[i - 1]!);
}

interface Heredoc {
  word: string;
  /** A quoted end word means a literal body: no expansion at all. */
  literal: boolean;
  /** `<<-` strips leading tabs, the end word's line included. */
  stripTabs: boolean;
  /** Index just past the end word. */
  end: number;
}

function readHeredocStart(script: string, from: number): Heredoc | undefined {
  let i = from;
  const stripTabs = script[i] === "-";
  if (stripTabs) i++;
  while (script[i] === " " || script[i] === "\t") i++;
  const match = /^(?:'([^']*)'|"([^"]*)"|([^\s;&|<>()]+))/.exec(script.slice(i));
  if (!match) return undefined;
  const raw = match[3];
  const literal = raw === undefined || raw.includes("\\") || raw.includes("'") || raw.includes('"');
  const word = (match[1] ?? match[2] ?? raw!).replaceAll(/["'\\]/g, "");
  return { word, literal, stripTabs, end: i + match[0].length };
}

/**
 * A here-document's body expands like a double-quoted string (quotes in it are plain characters), or,
 * with a quoted end word, not at all: there a `{token}` cannot become the token.
 */
function rewriteHeredocBodies(script: string, from: number, heredocs: Heredoc[]): { text: string; end: number } | { error: string } {
  let text = "";
  let i = from;
  for (const heredoc of heredocs) {
    for (;;) {
      if (i >= script.length) return { error: `here-document <<${heredoc.word} has no end line "${heredoc.word}" — add it` };
      const lineEnd = script.indexOf("\n", i);
      const stop = lineEnd === -1 ? script.length : lineEnd;
      const line = script.slice(i, stop);
      const ended = (heredoc.stripTabs ? line.replace(/^\t+/, "") : line) === heredoc.word;
      if (!ended && heredoc.literal && line.includes(TOKEN_PLACEHOLDER)) {
        return { error: `{token} in here-document <<'${heredoc.word}' is never expanded — unquote the end word, or use $${TOKEN_VARIABLE}` };
      }
      text += ended || heredoc.literal ? line : line.replaceAll(TOKEN_PLACEHOLDER, REFERENCE.double);
      i = stop;
      if (lineEnd !== -1) {
        text += "\n";
        i++;
      }
      if (ended) break;
    }
  }
  return { text, end: i };
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
    s.issues.add(path, `expected one string or a non-empty list of strings, e.g. ["./probe.sh", "--quiet"], got ${describe(value)}`);
    return [];
  }
  value.forEach((arg: string, i) => {
    if (arg.includes(TOKEN_PLACEHOLDER)) {
      s.issues.add(`${path}[${i}]`, `{token} in a list is an argument of the command, which every user can read with ps — ${ARGV_TOKEN_HINT}`);
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
    if (!ENV_NAME.test(name)) s.issues.add(path, "is not a variable name — use letters, digits and _, not starting with a digit");
    else if (name.startsWith("KEYPOOL_")) {
      s.issues.add(path, `KEYPOOL_ names are keypool's own — the command gets the token as ${TOKEN_VARIABLE}; rename the variable`);
    } else if (value.includes(TOKEN_PLACEHOLDER)) {
      s.issues.add(path, `{token} is not substituted in env — the command already gets the token as ${TOKEN_VARIABLE}`);
    }
  }
  return env;
}
