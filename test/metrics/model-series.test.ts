import { describe, expect, it } from "bun:test";
import { createMetrics } from "../../src/metrics/metrics";
import { MODEL_SERIES_PER_POOL, OTHER_MODELS, modelPairSeries } from "../../src/metrics/model-series";
import { ManualClock } from "../../src/pool/clock";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import { parsePrometheusText, sampleValue } from "../helpers/prometheus-text";
import { isModelName } from "../../src/pool/model-facts";
import type { KeyStatus, ModelStatus, PoolStore } from "../../src/store/types";

const UNTIL = Date.UTC(2026, 0, 1, 12, 5);

function key(pool: string, id: string, models: Record<string, ModelStatus["state"]>): KeyStatus {
  return {
    pool,
    id,
    masked: "sk-…0000",
    state: "live",
    health: "live",
    reason: null,
    until: null,
    weight: 1,
    lastCheck: null,
    lastCheckStatus: null,
    lastCheckLatencyMs: null,
    consecutiveFailures: 0,
    nextCheckAt: null,
    lastUsed: null,
    requests: 0,
    errors: 0,
    inFlight: 0,
    failClass: null,
    rung: 0,
    group: null,
    remaining: null,
    sessions: 0,
    models: Object.fromEntries(
      Object.entries(models).map(([model, state]) => [model, { state, until: UNTIL, reason: "why" }]),
    ),
    onlyModels: null,
    spend: null,
  };
}

describe("per-model metric series", () => {
  it("counts pairs per pool and state, every pool's zeros included, and keys per (pool, model, state)", () => {
    const rows = [
      key("a", "k1", { "gpt-4o": "cooling", "o1-pro": "denied" }),
      key("a", "k2", { "gpt-4o": "cooling" }),
      key("a", "k3", {}),
      key("b", "k1", { "gpt-4o": "denied" }),
    ];
    expect(modelPairSeries(rows, ["a", "b", "c"])).toEqual({
      pairs: [
        { pool: "a", state: "cooling", value: 2 },
        { pool: "a", state: "denied", value: 1 },
        { pool: "b", state: "cooling", value: 0 },
        { pool: "b", state: "denied", value: 1 },
        { pool: "c", state: "cooling", value: 0 },
        { pool: "c", state: "denied", value: 0 },
      ],
      byModel: [
        { pool: "a", model: "gpt-4o", state: "cooling", value: 2 },
        { pool: "a", model: "o1-pro", state: "denied", value: 1 },
        { pool: "b", model: "gpt-4o", state: "denied", value: 1 },
      ],
    });
  });

  it(`gives at most ${MODEL_SERIES_PER_POOL} models a pool series of their own, most rested first`, () => {
    // 30 models on one key each, and m-05 on four keys: it leads, the next 19 by name follow, 10 are summed.
    const names = Array.from({ length: 30 }, (_, i) => `m-${String(i).padStart(2, "0")}`);
    const rows = [
      key("p", "k0", Object.fromEntries(names.map((m) => [m, "cooling" as const]))),
      ...[1, 2, 3].map((i) => key("p", `k${i}`, { "m-05": "denied" })),
    ];
    const { pairs, byModel } = modelPairSeries(rows, ["p"]);
    const models = [...new Set(byModel.map((s) => s.model))];
    expect(models).toEqual([
      "m-05",
      ...names.filter((m) => m !== "m-05").slice(0, MODEL_SERIES_PER_POOL - 1),
      OTHER_MODELS,
    ]);
    expect(byModel.filter((s) => s.model === OTHER_MODELS)).toEqual([
      { pool: "p", model: OTHER_MODELS, state: "cooling", value: 10 },
    ]);
    // Nothing is lost past the cap: the per-model series still add up to the pool's pairs.
    for (const { state, value } of pairs)
      expect(byModel.filter((s) => s.state === state).reduce((n, s) => n + s.value, 0)).toBe(value);
    expect(pairs).toEqual([
      { pool: "p", state: "cooling", value: 30 },
      { pool: "p", state: "denied", value: 3 },
    ]);
  });

  it("never uses a name that is not a model name as a label, nor lets one take the shared series' name", () => {
    expect(isModelName(OTHER_MODELS)).toBe(false);
    const rows = [key("p", "k0", { 'x"} 1\nkeypool_fake{a="': "cooling", [OTHER_MODELS]: "denied", ok: "cooling" })];
    expect(modelPairSeries(rows, ["p"]).byModel).toEqual([
      { pool: "p", model: "ok", state: "cooling", value: 1 },
      { pool: "p", model: OTHER_MODELS, state: "cooling", value: 1 },
      { pool: "p", model: OTHER_MODELS, state: "denied", value: 1 },
    ]);
  });
});

describe("the model gauges in a scrape", () => {
  it("come from the same single read of the store as keypool_keys, and a new read each scrape", async () => {
    const clock = new ManualClock();
    const sqlite = new SqliteStore({ path: ":memory:", clock, random: () => 0 });
    await sqlite.syncPools([
      {
        settings: { name: "p", rotation: "lru", cooldownSec: 0, leaseTtlSec: 300, recheckIntervalSec: 300 },
        keys: [{ id: "k0", token: "sk-test-aaaaaaaaaaaaaaaaaaaaaaaa", weight: 1 }],
      },
    ]);
    let reads = 0;
    let models: KeyStatus["models"] = { "m-big": { state: "cooling", until: UNTIL, reason: null } };
    const status: PoolStore["status"] = async (pool) => {
      reads++;
      return (await sqlite.status(pool)).map((row) => ({ ...row, models }));
    };
    const metrics = createMetrics({ store: Object.assign(Object.create(sqlite) as PoolStore, { status }), clock });
    // Only keypool's own lines: prom-client's event-loop lag reads "Nan" before its first sample.
    const scrape = async () => parsePrometheusText((await metrics.scrape()).replace(/^(?!(# \w+ )?keypool_).*$/gm, ""));
    let samples = await scrape();
    expect(reads).toBe(1);
    expect(sampleValue(samples, "keypool_keys", { pool: "p", state: "unknown" })).toBe(1);
    expect(sampleValue(samples, "keypool_model_keys", { pool: "p", model: "m-big", state: "cooling" })).toBe(1);

    models = {};
    samples = await scrape();
    expect(reads).toBe(2);
    expect(samples.filter((s) => s.name === "keypool_model_keys")).toEqual([]);
    expect(sampleValue(samples, "keypool_model_pairs", { pool: "p", state: "cooling" })).toBe(0);
    await sqlite.close();
  });
});
