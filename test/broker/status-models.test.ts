import { describe, expect, it } from "bun:test";
import { BrokerService } from "../../src/broker/broker-service";
import { statusRoutes } from "../../src/http/status-routes";
import { ManualClock } from "../../src/pool/clock";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import type { KeyStatus, PoolStore } from "../../src/store/types";

const AT = Date.UTC(2026, 0, 1, 12, 5);

/** A real store whose status() shows pairs: `a` rests m-big and lacks m-x, `b` is restricted by models=. */
async function storeWithPairs(): Promise<PoolStore> {
  const store = new SqliteStore({ path: ":memory:", clock: new ManualClock(), random: () => 0 });
  await store.syncPools([
    {
      settings: { name: "default", rotation: "lru", cooldownSec: 0, leaseTtlSec: 300, recheckIntervalSec: 300 },
      keys: [
        { id: "a", token: "sk-test-aaaaaaaaaaaaaaaaaaaaaaaa", weight: 1 },
        { id: "b", token: "sk-test-bbbbbbbbbbbbbbbbbbbbbbbb", weight: 1 },
      ],
    },
  ]);
  const pairs: Record<string, Pick<KeyStatus, "models" | "onlyModels">> = {
    a: {
      models: {
        "m-big": { state: "cooling", until: AT, reason: "rate_limit (HTTP 429); rung 1, resting 1m" },
        "m-x": { state: "denied", until: AT + 3600_000, reason: null },
      },
      onlyModels: null,
    },
    b: { models: {}, onlyModels: ["m-small", "m-mid"] },
  };
  const status: PoolStore["status"] = async (pool) =>
    (await store.status(pool)).map((row) => ({ ...row, ...pairs[row.id] }));
  return Object.assign(Object.create(store) as PoolStore, { status });
}

describe("GET /status for model-aware keys", () => {
  it("gives each key its models (ISO until, snake_case) and only_models, and the answer meets its schema", async () => {
    const store = await storeWithPairs();
    const app = statusRoutes(new BrokerService(store));
    const response = await app.handle(new Request("http://keypool.test/status"));
    expect(response.status).toBe(200);
    const body = await response.json();
    expect(body.keys.map((k: Record<string, unknown>) => [k.id, k.models, k.only_models])).toEqual([
      [
        "a",
        {
          "m-big": {
            state: "cooling",
            until: "2026-01-01T12:05:00.000Z",
            reason: "rate_limit (HTTP 429); rung 1, resting 1m",
          },
          "m-x": { state: "denied", until: "2026-01-01T13:05:00.000Z", reason: null },
        },
        null,
      ],
      ["b", {}, ["m-small", "m-mid"]],
    ]);
    await store.close();
  });
});
