import { defineCommand } from "citty";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { findConfig } from "../../config/find-config";
import type { Config } from "../../config/types";
import { systemClock } from "../../pool/clock";
import { createStore } from "../../store/create-store";
import { loadTokenCipher, readKeyFile } from "../../store/master-key";
import { databaseUrlOf } from "../../store/postgres/database-url";
import { configOrEnvArg, jsonArg } from "../_shared";
import { CliExit, EXIT } from "../exit";

export default defineCommand({
  meta: {
    name: "reencrypt",
    description:
      "Rewrite every stored token under the current master key, or under --new-key-file (stop running keypools first)",
  },
  args: {
    ...configOrEnvArg,
    ...jsonArg,
    "new-key-file": {
      type: "string",
      description:
        "Encrypt under the key in this file instead; then point store.encryption_key_file (or KEYPOOL_MASTER_KEY) at it",
    },
    "state-file": { type: "string", description: "The state file to rewrite (default: the config's state_file)" },
  },
  async run({ args }) {
    const config: Pick<Config, "stateFile" | "store"> =
      args["state-file"] !== undefined && args.config === undefined
        ? { stateFile: resolve(args["state-file"]) }
        : findConfig({ path: args.config });
    const onPostgres = args["state-file"] === undefined && databaseUrlOf(config) !== undefined;
    const stateFile = args["state-file"] !== undefined ? resolve(args["state-file"]) : config.stateFile;
    if (!onPostgres && (stateFile === ":memory:" || !existsSync(stateFile))) {
      throw new CliExit(
        EXIT.usage,
        `no state file at ${stateFile} — nothing to re-encrypt; check state_file or pass --state-file PATH`,
      );
    }
    const current = loadTokenCipher(config);
    const next = args["new-key-file"] !== undefined ? readKeyFile(args["new-key-file"], "--new-key-file") : current;
    if (!next) {
      throw new CliExit(
        EXIT.usage,
        "no key to encrypt with — set KEYPOOL_MASTER_KEY or store.encryption_key_file, or pass --new-key-file FILE",
      );
    }
    // Opening checks the current key against the store: a wrong one stops here, before anything is written.
    // --state-file names a SQLite file even where the config or environment names a database.
    const target = onPostgres ? config : { stateFile };
    const { store, where } = await createStore(target, {
      clock: systemClock,
      cipher: current,
      env: onPostgres ? process.env : {},
    });
    let rewritten: number;
    try {
      rewritten = (await store.reencrypt(next)).rewritten;
    } finally {
      await store.close();
    }
    const report = {
      store: where,
      ...(onPostgres ? {} : { state_file: stateFile }),
      rewritten,
      key_id: next.keyId,
      key: next.source,
      was_encrypted: current !== undefined,
    };
    if (args.json) console.log(JSON.stringify(report, null, 2));
    else {
      console.log(
        `re-encrypted ${rewritten} stored secrets in ${onPostgres ? where : stateFile} under key ${next.keyId} (${next.source})`,
      );
      if (next !== current)
        console.log(
          "start keypool with this key from now on; processes still running with the old key must be restarted",
        );
    }
    return EXIT.ok;
  },
});
