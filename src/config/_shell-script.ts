import { TOKEN_VARIABLE } from "./types";

/**
 * Shell scripts in which `{token}` must mean the token without the token ever being shell text: each one
 * becomes a reference to $KEYPOOL_TOKEN, quoted for the place it stands in. What the scanner tracks is what
 * changes how a reference must be written — quotes, `$(…)`, `${…}`, backquotes, comments, here-documents —
 * not the whole grammar: a misread could only make the shell expand the variable differently, never run
 * the token, since a variable's value is never parsed as code.
 */

export const TOKEN_PLACEHOLDER = "{token}";

type Quoting = "plain" | "single" | "double";

/** Where the scanner is: a quote, or an unquoted stretch that some bracket may close. */
interface Frame {
  quoting: Quoting;
  /** `$((…))`: `<<` there is a shift, not a here-document. */
  arithmetic?: boolean;
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
      const arithmetic = script[i + 2] === "(";
      stack.push({ quoting: "plain", closer: ")", depth: 0, arithmetic });
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
    } else if (ch === "<" && next === "<" && script[i + 2] !== "<" && !frame.arithmetic) {
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
  if (open.closer) return { error: `has an unclosed ${OPENER_OF[open.closer]} — close it` };
  if (pendingHeredocs.length > 0) {
    return { error: "starts a here-document (<<) with no body — add the lines and the end word" };
  }
  return out;
}

const OPENER_OF = { ")": "$(", "}": "${", "`": "`" } as const;

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
function rewriteHeredocBodies(
  script: string,
  from: number,
  heredocs: Heredoc[],
): { text: string; end: number } | { error: string } {
  let text = "";
  let i = from;
  for (const heredoc of heredocs) {
    for (;;) {
      if (i >= script.length) {
        return { error: `here-document <<${heredoc.word} has no end line "${heredoc.word}" — add it` };
      }
      const lineEnd = script.indexOf("\n", i);
      const stop = lineEnd === -1 ? script.length : lineEnd;
      const line = script.slice(i, stop);
      const ended = (heredoc.stripTabs ? line.replace(/^\t+/, "") : line) === heredoc.word;
      if (!ended && heredoc.literal && line.includes(TOKEN_PLACEHOLDER)) {
        const fix = `unquote the end word, or use $${TOKEN_VARIABLE}`;
        return { error: `{token} in here-document <<'${heredoc.word}' is never expanded — ${fix}` };
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
