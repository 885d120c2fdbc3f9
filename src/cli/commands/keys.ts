import { defineCommand } from "citty";
import { existsSync } from "node:fs";
import { loadConfig } from "../../config/load";
import { systemClock } from "../../pool/clock";
import { maskToken } from "../../pool/mask";
import { loadTokenCipher } from "../../store/master-key";
import { createStore } from "../../store/create-store";
import { databaseUrlOf } from "../../store/postgres/database-url";
import type { KeyStatus } from "../../store/types";
import { configArg, jsonArg } from "../_shared";
import { formatTable } from "../_table";
import { EXIT } from "../exit";

const list = defineCommand({
  meta: { name: "list", description: "List the config's keys with their stored state (no daemon needed)" },
  args: { ...configArg, ...jsonArg, pool: { type: "string", description: "Only this pool" } },
  async run({ args }) {
    const config = loadConfig(args.config);
    const stored = new Map<string, KeyStatus>();
    // Read the state file as it is; listing must never create, migrate or sync it. (PostgreSQL is opened as a daemon would.)
    if (databaseUrlOf(config) !== undefined || config.stateFile === ":memory:" || existsSync(config.stateFile)) {
      const { store } = await createStore(config, { clock: systemClock, cipher: loadTokenCipher(config) });
      for (const row of await store.status()) stored.set(`${row.pool}\u0000${row.id}`, row);
      await store.close();
    }
    const pools = Object.values(config.pools).filter((pool) => !args.pool || pool.name === args.pool);
    const rows = pools.flatMap((pool) => {
      const origin = pool.tokensFile ? "file" : "env";
      const configured = pool.keys.map((key) => {
        const state = stored.get(`${pool.name}\u0000${key.id}`);
        return {
          pool: pool.name,
          id: key.id,
          masked: maskToken(key.token),
          weight: key.weight,
          origin,
          state: state?.state ?? "unknown",
          reason: state?.reason ?? (state ? null : "not yet seen by a daemon"),
        };
      });
      // What else the store holds for the pool was added through the admin API (keypool keys add).
      const ids = new Set(pool.keys.map((key) => key.id));
      const added = [...stored.values()]
        .filter((row) => row.pool === pool.name && !ids.has(row.id))
        .map((row) => ({
          pool: pool.name,
          id: row.id,
          masked: row.masked,
          weight: row.weight,
          origin: "api",
          state: row.state,
          reason: row.reason,
        }));
      return [...configured, ...added];
    });
    if (args.json) console.log(JSON.stringify(rows, null, 2));
    else
      console.log(
        formatTable(
          ["POOL", "ID", "TOKEN", "WEIGHT", "ORIGIN", "STATE", "REASON"],
          rows.map((r) => [r.pool, r.id, r.masked, r.weight, r.origin, r.state, r.reason ?? ""]),
        ),
      );
    return EXIT.ok;
  },
});

export default defineCommand({
  meta: { name: "keys", description: "Inspect and administer the pools' keys" },
  subCommands: {
    list,
    add: () => import("./keys-add").then((m) => m.default),
    rm: () => import("./keys-rm").then((m) => m.default),
    enable: () => import("./keys-switch").then((m) => m.enableCommand),
    disable: () => import("./keys-switch").then((m) => m.disableCommand),
    reencrypt: () => import("./keys-reencrypt").then((m) => m.default),
  },
});
