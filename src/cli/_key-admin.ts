import { formatTable } from "./_table";
import { CliExit, EXIT } from "./exit";

/** Which key of which pool an admin command acts on: `keypool keys disable ID --pool P` or `--id ID`. */
export const keyTargetArgs = {
  key: { type: "positional", required: false, description: "Key id (or --id)" },
  id: { type: "string", description: "Key id" },
  pool: { type: "string", description: "Pool name", default: "default" },
} as const;

export function keyIdOf(args: { key?: string; id?: string }, command: string): string {
  const id = args.id ?? args.key;
  if (!id) throw new CliExit(EXIT.usage, `say which key: keypool keys ${command} ID --pool POOL`);
  return id;
}

export function keyPath(pool: string, id?: string): string {
  return `/pools/${encodeURIComponent(pool)}/keys${id === undefined ? "" : `/${encodeURIComponent(id)}`}`;
}

/** A key as the admin API returned it (masked); one table row, or JSON. */
export function formatKey(key: AdminKey, json: boolean): string {
  if (json) return JSON.stringify(key, null, 2);
  return formatTable(
    ["POOL", "ID", "TOKEN", "ORIGIN", "STATE", "WEIGHT", "GROUP"],
    [[key.pool, key.id, key.masked, key.origin, key.state, key.weight, key.group ?? ""]],
  );
}

export interface AdminKey {
  pool: string;
  id: string;
  masked: string;
  origin: string;
  state: string;
  weight: number;
  group: string | null;
}
