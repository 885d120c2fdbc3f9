import { describe, expect, it } from "bun:test";
import { Counter, Registry } from "prom-client";
import { CounterTally } from "../../src/metrics/counter-tally";

const config = { name: "kp_test_total", help: "test", labelNames: ["pool", "key", "class"] };

/** The same increments through prom-client's Counter and through the tally, each in a registry of its own. */
function twins(): { plain: Registry; tallied: Registry; add(amount: number, ...values: string[]): void } {
  const plain = new Registry();
  const tallied = new Registry();
  const counter = new Counter({ ...config, registers: [plain] });
  const tally = new CounterTally({ ...config, registers: [tallied] });
  return {
    plain,
    tallied,
    add(amount, pool, key, kind) {
      if (amount > 0) counter.inc({ pool, key, class: kind }, amount);
      tally.addBy(amount, pool!, key!, kind!);
    },
  };
}

describe("CounterTally", () => {
  it("exports what prom-client's Counter does for the same increments, as text and as JSON", async () => {
    const { plain, tallied, add } = twins();
    expect(await tallied.metrics()).toBe(await plain.metrics());
    add(1, "a", "k1", "ok");
    add(1, "a", "k1", "auth");
    add(3, "a", "k2", "ok");
    expect(await tallied.metrics()).toBe(await plain.metrics());
    // Read again with nothing new: nothing is counted twice. Then a series differing only in its last label.
    expect(await tallied.metrics()).toBe(await plain.metrics());
    add(1, "a", "k1", "ok");
    add(0, "a", "k3", "ok");
    add(2, "b", "k1", "ok");
    const text = await tallied.metrics();
    expect(text).toBe(await plain.metrics());
    expect(text).toContain('kp_test_total{pool="a",key="k1",class="ok"} 2');
    expect(text).not.toContain('key="k3"');
    expect(await tallied.getMetricsAsJSON()).toEqual(await plain.getMetricsAsJSON());
  });

  it("counts a metric with a single label", async () => {
    const registry = new Registry();
    const tally = new CounterTally({
      name: "kp_pools_total",
      help: "test",
      labelNames: ["pool"],
      registers: [registry],
    });
    tally.add("a");
    tally.add("b");
    tally.add("a");
    const [metric] = await registry.getMetricsAsJSON();
    expect(metric?.values).toEqual([
      { value: 2, labels: { pool: "a" } },
      { value: 1, labels: { pool: "b" } },
    ]);
  });

  it("files up to four labels, each series' values in their own fields, and refuses a fifth", async () => {
    const four = { name: "kp_four_total", help: "test", labelNames: ["pool", "key", "model", "class"] };
    const plain = new Registry();
    const tallied = new Registry();
    const counter = new Counter({ ...four, registers: [plain] });
    const tally = new CounterTally({ ...four, registers: [tallied] });
    for (const [pool, key, model, kind] of [
      ["a", "k1", "m1", "ok"],
      ["a", "k1", "m2", "ok"],
      ["a", "k1", "m1", "auth"],
      ["b", "k1", "m1", "ok"],
      ["a", "k1", "m1", "ok"],
    ] as const) {
      counter.inc({ pool, key, model, class: kind });
      tally.add(pool, key, model, kind);
    }
    expect(await tallied.metrics()).toBe(await plain.metrics());
    expect(await tallied.getMetricsAsJSON()).toEqual(await plain.getMetricsAsJSON());
    expect(
      () =>
        new CounterTally({ name: "kp_five_total", help: "test", labelNames: ["a", "b", "c", "d", "e"], registers: [] }),
    ).toThrow("at most 4 labels");
  });

  it("drops every series on reset, as the registry's resetMetrics asks", async () => {
    const { plain, tallied, add } = twins();
    add(1, "a", "k1", "ok");
    plain.resetMetrics();
    tallied.resetMetrics();
    expect(await tallied.metrics()).toBe(await plain.metrics());
    expect(await tallied.metrics()).not.toContain('pool="a"');
  });
});
