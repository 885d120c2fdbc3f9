import { existsSync, readFileSync } from "node:fs";
import type { Config } from "../config/types";
import { type RestoredKeyState, parsePoolctlState } from "../store/poolctl-state";
import { SqliteStore } from "../store/sqlite/sqlite-store";
import type { PoolStore } from "../store/types";

export interface StartLine {
  level: "info" | "warn";
  message: string;
  fields: Record<string, unknown>;
}

const KEPT_BESIDE =
  "state_file is poolctl's JSON: keypool keeps its state in its own file beside it and never writes the JSON";
const UNREADABLE = "poolctl's state file could not be read; keys start fresh (the file is left as it is)";

/**
 * With `state_file` naming poolctl's JSON: what it says of each key is taken over, once, into keypool's
 * own state file beside it; the JSON is only read. Returns the line that says so at start.
 */
export function importPoolctlState(config: Config, store: PoolStore): StartLine | undefined {
  const json = config.poolctlStateFile;
  if (!json || !(store instanceof SqliteStore)) return undefined;
  const fields = { poolctl_state_file: json, state_file: config.stateFile };
  // Nothing to import yet; a JSON poolctl writes later is still imported on a later start.
  if (!existsSync(json)) {
    return { level: "info", message: KEPT_BESIDE, fields: { ...fields, imported: "no JSON file yet" } };
  }
  let states: RestoredKeyState[];
  try {
    states = parsePoolctlState(readFileSync(json, "utf8"));
  } catch (error) {
    // Not the parser's message, which quotes the file: it may not be poolctl's and may hold a secret.
    const why = error instanceof SyntaxError ? "not JSON" : error instanceof TypeError ? error.message : "unreadable";
    return { level: "warn", message: UNREADABLE, fields: { ...fields, error: why } };
  }
  const result = store.importPoolctlState(json, states);
  const imported = result.already ? { imported: "before" } : { imported_keys: result.restored };
  return { level: "info", message: KEPT_BESIDE, fields: { ...fields, ...imported } };
}
