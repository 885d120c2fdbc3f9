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
});
