import { defineCommand } from "citty";
import { existsSync } from "node:fs";
import { loadConfig } from "../../config/load";
import { systemClock } from "../../pool/clock";
import { maskToken } from "../../pool/mask";
import { loadTokenCipher } from "../../store/master-key";
import { SqliteStore } from "../../store/sqlite/sqlite-store";
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
    // Read the state file as it is; listing must never create, migrate or sync it.
    if (config.stateFile === ":memory:" || existsSync(config.stateFile)) {
      const store = new SqliteStore({ path: config.stateFile, clock: systemClock, cipher: loadTokenCipher(config) });
      for (const row of await store.status()) stored.set(`${row.pool}\u0000${row.id}`, row);
      await store.close();
    }
    const rows = Object.values(config.pools)
      .filter((pool) => !args.pool || pool.name === args.pool)
      .flatMap((pool) =>
        pool.keys.map((key) => {
          const state = stored.get(`${pool.name}\u0000${key.id}`);
          return { pool: pool.name, id: key.id, masked: maskToken(key.token), weight: key.weight, state: state?.state ?? "unknown", reason: state?.reason ?? (state ? null : "not yet seen by a daemon") };
        }),
      );
    if (args.json) console.log(JSON.stringify(rows, null, 2));
    else console.log(formatTable(["POOL", "ID", "TOKEN", "WEIGHT", "STATE", "REASON"], rows.map((r) => [r.pool, r.id, r.masked, r.weight, r.state, r.reason ?? ""])));
    return EXIT.ok;
  },
});

export default defineCommand({
  meta: { name: "keys", description: "Inspect the pools' keys" },
  subCommands: { list, reencrypt: () => import("./keys-reencrypt").then((m) => m.default) },
});
