import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";

export const REPO = join(import.meta.dir, "..", "..");

/** A fenced code block of a Markdown page. */
export interface Snippet {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  text: string;
  /** The text of the few lines before the fence: where markers such as `<!-- not keypool config -->` go. */
  before: string;
}

/** README.md, CONTRIBUTING.md and every page under docs/. */
export function docPages(): string[] {
  const pages = ["README.md", "CONTRIBUTING.md"].map((p) => join(REPO, p));
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith(".md")) pages.push(path);
    }
  };
  walk(join(REPO, "docs"));
  return pages;
}

export function where(s: Pick<Snippet, "file" | "line">): string {
  return `${relative(REPO, s.file)}:${s.line}`;
}

export function snippetsOf(file: string): Snippet[] {
  const lines = readFileSync(file, "utf8").split("\n");
  const found: Snippet[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\w*)/.exec(lines[i]!);
    if (!open) continue;
    const indent = open[1]!.length;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j]!); j++) body.push(lines[j]!.slice(indent));
    found.push({
      file,
      line: i + 1,
      lang: open[2]!,
      text: body.join("\n"),
      before: lines.slice(Math.max(0, i - 3), i).join("\n"),
    });
    i = j;
  }
  return found;
}

/** Shell lines with `\` continuations joined and comments kept apart: `{ command, comment, next }`. */
export function shellLines(text: string): Array<{ command: string; comment: string }> {
  const joined = text.replace(/\\\n\s*/g, " ").split("\n");
  return joined.map((raw) => {
    const line = raw.replace(/^\$ /, "");
    const hash = commentStart(line);
    return {
      command: (hash < 0 ? line : line.slice(0, hash)).trim(),
      comment: hash < 0 ? "" : line.slice(hash + 1).trim(),
    };
  });
}

/** Where an unquoted ` #` comment starts, or -1. */
function commentStart(line: string): number {
  let quote = "";
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = "";
    } else if (c === "'" || c === '"') quote = c;
    else if (c === "#" && (i === 0 || /\s/.test(line[i - 1]!))) return i;
  }
  return -1;
}

/** Shell words with simple quoting, split into commands at `|`, `&&`, `||`, `;`. */
export function shellCommands(command: string): string[][] {
  const commands: string[][] = [[]];
  let word = "";
  let inWord = false;
  let quote = "";
  const flush = () => {
    if (inWord) commands.at(-1)!.push(word);
    word = "";
    inWord = false;
  };
  for (let i = 0; i < command.length; i++) {
    const c = command[i]!;
    if (quote) {
      if (c === quote) quote = "";
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (/\s/.test(c)) flush();
    else if (c === "|" || c === ";" || (c === "&" && command[i + 1] === "&")) {
      flush();
      if (command[i + 1] === c) i++;
      commands.push([]);
    } else {
      word += c;
      inWord = true;
    }
  }
  flush();
  return commands.filter((c) => c.length > 0);
}
