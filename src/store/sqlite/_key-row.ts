import type { KeyColumns } from "../key-columns";

/** A row of the `keys` table, as SELECT * returns it (SQLite keeps booleans as 0/1). */
export type KeyRow = KeyColumns<number>;
