import { closeSync, openSync, readSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/**
 * Where keypool keeps its state for a `state_file` setting (an absolute path). poolctl's state file
 * is JSON; pointed at one, keypool leaves it alone — never writes it, never changes its mode — and
 * keeps its own SQLite file beside it: `pool_state.json` → `pool_state.keypool.db`, importing the JSON once.
 */
export function stateFilesFor(path: string): { stateFile: string; poolctlStateFile?: string } {
  if (path === ":memory:" || !isPoolctlState(path)) return { stateFile: path };
  const name = basename(path).replace(/\.json$/i, "");
  return { stateFile: join(dirname(path), `${name}.keypool.db`), poolctlStateFile: path };
}

/** A `.json` name (written by poolctl, or to be), or a file whose content starts as JSON does. */
function isPoolctlState(path: string): boolean {
  if (/\.json$/i.test(path)) return true;
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const head = Buffer.alloc(64);
    const read = readSync(fd, head, 0, head.length, 0);
    // A SQLite file starts "SQLite format 3"; JSON with its first non-blank character.
    return /^\s*[[{]/.test(head.subarray(0, read).toString("latin1"));
  } catch {
    // Missing or unreadable: keypool creates (or reports) its own file there, as before.
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
