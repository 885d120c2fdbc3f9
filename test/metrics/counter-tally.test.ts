import { describe, expect, it } from "bun:test";
import { Registry } from "prom-client";
import { CounterTally } from "../../src/metrics/counter-tally";

async function values(registry: Registry): Promise<Record<string, number>> {
  const [metric] = await registry.getMetricsAsJSON();
  return Object.fromEntries((metric?.values ?? []).map((v) => [Object.values(v.labels).join("/"), v.value]));
}

describe("CounterTally", () => {
  it("reports what a plain counter would, however often it is read between increments", async () => {
    const registry = new Registry();
    const tally = new CounterTally({
      name: "kp_test_total",
      help: "test",
      labelNames: ["pool", "outcome"],
      registers: [registry],
    });
    expect(await values(registry)).toEqual({});
    tally.add("a", "ok");
    tally.add("a", "ok");
    tally.add("b", "none");
    expect(await values(registry)).toEqual({ "a/ok": 2, "b/none": 1 });
    // Read again with nothing new: nothing is counted twice.
    expect(await values(registry)).toEqual({ "a/ok": 2, "b/none": 1 });
    tally.add("a", "ok");
    tally.add("a", "none");
    expect(await values(registry)).toEqual({ "a/ok": 3, "b/none": 1, "a/none": 1 });
    expect(await registry.metrics()).toContain('kp_test_total{pool="a",outcome="ok"} 3');
  });

  it("keeps apart series that differ only in the last label, at any number of labels", async () => {
    const registry = new Registry();
    const byKey = new CounterTally({
      name: "kp_keys_total",
      help: "test",
      labelNames: ["pool", "key", "class"],
      registers: [registry],
    });
    const pools = new Registry();
    const byPool = new CounterTally({ name: "kp_pools_total", help: "test", labelNames: ["pool"], registers: [pools] });
    for (const [key, kind] of [
      ["k1", "ok"],
      ["k1", "auth"],
      ["k2", "ok"],
      ["k1", "ok"],
      ["k1", "auth"],
    ])
      byKey.add("p", key!, kind!);
    byKey.addBy(0, "p", "k3", "ok");
    byPool.add("a");
    byPool.add("b");
    byPool.add("a");
    expect(await values(registry)).toEqual({ "p/k1/ok": 2, "p/k1/auth": 2, "p/k2/ok": 1 });
    expect(await values(pools)).toEqual({ a: 2, b: 1 });
  });
});
