import { existsSync, readFileSync } from "node:fs";
import type { Config } from "../config/types";
import { type RestoredKeyState, parsePoolctlState } from "../store/poolctl-state";
import { SqliteStore } from "../store/sqlite/sqlite-store";
import type { PoolStore } from "../store/types";

/**
 * With `state_file` naming poolctl's JSON: what it says of each key is taken over, once, into keypool's
 * own state file beside it; the JSON is only read. Returns the line that says so at start.
 */
export function importPoolctlState(config: Config, store: PoolStore): { level: "info" | "warn"; message: string; fields: Record<string, unknown> } | undefined {
  const json = config.poolctlStateFile;
  if (!json || !(store instanceof SqliteStore)) return undefined;
  const fields = { poolctl_state_file: json, state_file: config.stateFile };
  const message = "state_file is poolctl's JSON: keypool keeps its state in its own file beside it and never writes the JSON";
  // Nothing to import yet; a JSON poolctl writes later is still imported on a later start.
  if (!existsSync(json)) return { level: "info", message, fields: { ...fields, imported: "no JSON file yet" } };
  let states: RestoredKeyState[];
  try {
    states = parsePoolctlState(readFileSync(json, "utf8"));
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    return { level: "warn", message: "poolctl's state file could not be read; keys start fresh (the file is left as it is)", fields: { ...fields, error: why } };
  }
  const result = store.importPoolctlState(json, states);
  return { level: "info", message, fields: result.already ? { ...fields, imported: "before" } : { ...fields, imported_keys: result.restored } };
}

