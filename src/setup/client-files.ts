/**
 * The client config files `keypool setup` knows, and the change it would make to each. Only files
 * that already exist are touched: a missing one means the user does not use that client.
 */
import { copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { createTwoFilesPatch } from "diff";
import { type ClientEnv, type Shell, assignment } from "./client-env";

export const BLOCK_START = "# >>> keypool >>>";
export const BLOCK_END = "# <<< keypool <<<";

interface KnownFile {
  path: string;
  /** The file's text with keypool's variables in it. */
  edit(text: string, env: ClientEnv): string;
}

export interface PlannedChange {
  path: string;
  before: string;
  after: string;
  /** A unified diff from before to after; empty when the file is already set up. */
  diff: string;
}

/** `.env` in the working directory (dotenv), and the rc files of bash, zsh and fish in `home`. */
export function knownFiles(dirs: { home: string; cwd: string }): KnownFile[] {
  return [
    { path: join(dirs.cwd, ".env"), edit: editDotenv },
    { path: join(dirs.home, ".bashrc"), edit: (text, env) => editRcBlock(text, env, "bash") },
    { path: join(dirs.home, ".zshrc"), edit: (text, env) => editRcBlock(text, env, "bash") },
    { path: join(dirs.home, ".config", "fish", "config.fish"), edit: (text, env) => editRcBlock(text, env, "fish") },
  ];
}

/** What setup would change in each known file that exists. `label` shortens paths in the diff headers. */
export function planChanges(
  files: KnownFile[],
  env: ClientEnv,
  label: (path: string) => string = (p) => p,
): PlannedChange[] {
  return files
    .filter((f) => existsSync(f.path))
    .map((f) => {
      const before = readFileSync(f.path, "utf8");
      const after = f.edit(before, env);
      return { path: f.path, before, after, diff: before === after ? "" : unifiedDiff(label(f.path), before, after) };
    });
}

/** Writes a change after copying the file to `PATH.keypool-backup-<stamp>`; returns the backup's path. */
export function applyChange(change: PlannedChange, stamp: string): string {
  const backup = `${change.path}.keypool-backup-${stamp}`;
  // Copy, then write in place: a symlinked dotfile stays a symlink and keeps its mode.
  copyFileSync(change.path, backup);
  writeFileSync(change.path, change.after);
  return backup;
}

/** `20260101T120000Z`: sorts by time and is safe in a file name. */
export function backupStamp(now: Date): string {
  return now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
}

/** A path relative to `base` when it is inside it, for shorter diff headers. */
export function labelUnder(base: string, prefix: string): (path: string) => string {
  return (path) => {
    const rel = relative(base, path);
    return rel.startsWith("..") ? path : `${prefix}/${rel}`;
  };
}

/**
 * dotenv: each base URL is set (an existing line is replaced in place, `export ` kept), and a
 * placeholder key is added only when the file has no such key: a real one there is left alone.
 */
function editDotenv(text: string, env: ClientEnv): string {
  const lines = text === "" ? [] : text.replace(/\n$/, "").split("\n");
  const missing: string[] = [];
  for (const v of env.vars) {
    const pattern = new RegExp(`^\\s*(export\\s+)?${v.name}\\s*=`);
    const index = lines.findIndex((line) => pattern.test(line));
    if (index === -1) missing.push(`${v.name}=${v.value}`);
    else if (!v.placeholder) lines[index] = `${pattern.exec(lines[index]!)![1] ?? ""}${v.name}=${v.value}`;
  }
  if (missing.length > 0) lines.push(`# ${env.notes[0]} — added by keypool setup`, ...missing);
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
}

/** Shell rc files: one marked block, replaced whole when it is there already and appended when not. */
function editRcBlock(text: string, env: ClientEnv, shell: Shell): string {
  const block = [
    BLOCK_START,
    ...env.notes.map((n) => `# ${n}`),
    "# written by keypool setup; delete this block to undo",
    ...env.vars.map((v) =>
      v.placeholder ? assignUnlessSet(v.name, v.value, shell) : assignment(v.name, v.value, shell),
    ),
    BLOCK_END,
  ].join("\n");
  const start = text.indexOf(BLOCK_START);
  const end = text.indexOf(BLOCK_END, start);
  if (start !== -1 && end !== -1) return text.slice(0, start) + block + text.slice(end + BLOCK_END.length);
  const separator = text === "" || text.endsWith("\n\n") ? "" : text.endsWith("\n") ? "\n" : "\n\n";
  return `${text}${separator}${block}\n`;
}

/** A placeholder key must not replace a key the user already exports. */
function assignUnlessSet(name: string, value: string, shell: Shell): string {
  if (shell === "fish") return `set -q ${name}; or ${assignment(name, value, shell)}`;
  return `export ${name}="\${${name}:-${value}}"`;
}

/** A unified diff of one file, headed by `label`. */
export function unifiedDiff(label: string, before: string, after: string): string {
  const patch = createTwoFilesPatch(label, label, before, after, undefined, undefined, { context: 3 });
  // The library opens with an `Index:`/`====` banner; a unified diff starts at `---`.
  return patch.slice(patch.indexOf("--- "));
}
