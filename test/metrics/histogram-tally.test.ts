import { describe, expect, it } from "bun:test";
import { Histogram, Registry } from "prom-client";
import { HistogramTally } from "../../src/metrics/histogram-tally";

const config = { name: "kp_test_seconds", help: "test", labelNames: ["pool", "phase"], buckets: [0.1, 0.5, 1] };

/** The same observations through prom-client's Histogram and through the tally, each in a registry of its own. */
function twins(): { plain: Registry; tallied: Registry; observe(value: number, pool: string, phase: string): void } {
  const plain = new Registry();
  const tallied = new Registry();
  const histogram = new Histogram({ ...config, registers: [plain] });
  const tally = new HistogramTally({ ...config, registers: [tallied] });
  return {
    plain,
    tallied,
    observe(value, pool, phase) {
      histogram.observe({ pool, phase }, value);
      tally.observe(value, pool, phase);
    },
  };
}

describe("HistogramTally", () => {
  it("exports what prom-client's Histogram does for the same observations, as text and as JSON", async () => {
    const { plain, tallied, observe } = twins();
    expect(await tallied.metrics()).toBe(await plain.metrics());
    // On a bound, between bounds, past the last one, and in a second series.
    for (const value of [0.1, 0.05, 0.3, 0.5, 2, 7.5]) observe(value, "a", "total");
    observe(0.2, "b", "first_byte");
    const text = await tallied.metrics();
    expect(text).toBe(await plain.metrics());
    expect(text).toContain('kp_test_seconds_bucket{le="0.5",pool="a",phase="total"} 4');
    expect(text).toContain('kp_test_seconds_count{pool="b",phase="first_byte"} 1');
    expect(await tallied.getMetricsAsJSON()).toEqual(await plain.getMetricsAsJSON());
  });

  it("drops every series on reset, as the registry's resetMetrics asks", async () => {
    const { plain, tallied, observe } = twins();
    observe(0.2, "a", "total");
    plain.resetMetrics();
    tallied.resetMetrics();
    expect(await tallied.metrics()).toBe(await plain.metrics());
    expect(await tallied.metrics()).not.toContain('pool="a"');
  });
});
