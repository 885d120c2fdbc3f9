import { describe, expect, it } from "bun:test";
import { ManualClock } from "../../src/pool/clock";
import { PostgresStore } from "../../src/store/postgres/postgres-store";
import { POSTGRES_URL, announceSkip, freshSchema } from "../helpers/postgres";
import { failure, keys, settings } from "./contract/_harness";

announceSkip("test/store/postgres-key-budget.test.ts");

describe.skipIf(!POSTGRES_URL)("PostgresStore and a key's own spend caps", () => {
  it("refuses a budget on addKey and updateKey with BAD_REQUEST, and keeps the key as it was", async () => {
    await using schema = await freshSchema();
    const store = await PostgresStore.open({ url: schema.url, maxConnections: 2, clock: new ManualClock() });
    try {
      await store.syncPools([{ settings: settings(), keys: keys(1) }]);
      await store.addKey("default", { id: "api", token: "sk-api-0123456789abcdefghijklmn", weight: 1 });
      const message =
        'budget: pool "default" is kept in PostgreSQL, where a key\'s cap is set in the tokens file (budget_day=, budget_month=) in this version — leave budget out here';
      const added = await failure(
        store.addKey("default", {
          id: "capped",
          token: "sk-api-capped-0123456789abcdefg",
          weight: 1,
          budget: { dayMicros: 1000 },
        }),
      );
      const changed = await failure(store.updateKey("default", "api", { budget: { dayMicros: 1000 } }));
      expect([added.code, added.message, changed.code, changed.message]).toEqual([
        "BAD_REQUEST",
        message,
        "BAD_REQUEST",
        message,
      ]);
      expect((await store.listKeys("default")).map((k) => k.id).sort()).toEqual(["api", "k0"]);
    } finally {
      await store.close();
    }
  });
});
