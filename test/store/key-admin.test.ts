import { describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { ManualClock } from "../../src/pool/clock";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import { createTokenCipher, parseMasterKey } from "../../src/store/token-cipher";
import { tempDir } from "../helpers/temp-dir";
import { settings } from "./contract/_harness";

// What key administration does is in the store contract (test/store/contract/key-admin.ts); this is SQLite's file.
const API_TOKEN = "sk-api-0123456789abcdefghijklmn";

describe("addKey in SQLite", () => {
  it("encrypts the added token at rest like any other", async () => {
    using dir = tempDir();
    const path = dir.file("state.db");
    const cipher = createTokenCipher(parseMasterKey("11".repeat(32)), "test key");
    const store = new SqliteStore({ path, clock: new ManualClock(), cipher });
    await store.syncPools([
      {
        settings: settings(),
        keys: [
          { id: "a", token: "sk-test-aaaaaaaaaaaaaaaaaaaaaaaa", weight: 1 },
          { id: "b", token: "sk-test-bbbbbbbbbbbbbbbbbbbbbbbb", weight: 1 },
        ],
      },
    ]);
    await store.addKey("default", { id: "c", token: API_TOKEN, weight: 1 });
    expect((await store.take("default", { exclude: ["a", "b"] })).token).toBe(API_TOKEN);
    await store.close();
    // close() checkpoints the WAL into the file, so the file is everything written.
    expect(readFileSync(path).toString("latin1").includes(API_TOKEN)).toBe(false);
  });
});
