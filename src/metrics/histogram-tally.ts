import { type FiledSeries, LabelTree, labelFields, labelsOf } from "./label-tree";
import type { Registry } from "prom-client";

interface Series extends FiledSeries<Series> {
  /** Observations per bucket (not cumulative); the last slot is past the largest bound (+Inf). */
  counts: Float64Array;
  sum: number;
  count: number;
}

interface ExportedValue {
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  value: number;
  metricName: string;
  /** prom-client's bucket lines carry one (null: exemplars are off). */
  exemplar?: null;
}

interface ExportedMetric {
  name: string;
  help: string;
  type: string;
  aggregator: string;
  values: ExportedValue[];
}

/**
 * A Prometheus histogram that the gateway observes twice per request. prom-client's Histogram builds,
 * validates and hashes the label set on every `observe()`, about 2 µs of a request's CPU; here a hot
 * series costs one map lookup per label and a walk over the buckets. It registers itself as a metric of
 * its own and exports the same lines prom-client's Histogram would (`_bucket` with `le`, `_sum`, `_count`).
 */
export class HistogramTally {
  readonly name: string;
  readonly help: string;
  readonly type = "histogram";
  readonly aggregator = "sum";
  private readonly bounds: readonly number[];
  private readonly tree: LabelTree<Series>;
  private series: Series[] = [];

  constructor(config: {
    name: string;
    help: string;
    labelNames: readonly string[];
    buckets: readonly number[];
    registers: Registry[];
  }) {
    this.name = config.name;
    this.help = config.help;
    this.bounds = [...config.buckets].sort((a, b) => a - b);
    this.tree = new LabelTree(config.labelNames, (values) => {
      const series: Series = {
        ...labelFields(values),
        counts: new Float64Array(this.bounds.length + 1),
        sum: 0,
        count: 0,
        sibling: undefined,
      };
      this.series.push(series);
      return series;
    });
    for (const registry of config.registers) registry.registerMetric(this as never);
  }

  /** One observation of `value` in the series with these label values, given in `labelNames` order. */
  observe(value: number, ...values: string[]): void {
    if (!Number.isFinite(value)) return;
    const series = this.tree.find(values);
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    series.counts[i]!++;
    series.sum += value;
    series.count++;
  }

  /** The metric with each line's labels whole (the series' and its `le`), as prom-client's `get()` gives them. */
  async get(): Promise<ExportedMetric> {
    const metric = await this.getForPromString();
    const values = metric.values.map(({ labels, sharedLabels, ...rest }) => ({
      ...rest,
      labels: { ...sharedLabels, ...labels },
    }));
    return { ...metric, values };
  }

  /** What the registry reads at a scrape, in prom-client's shape for a histogram. */
  async getForPromString(): Promise<ExportedMetric> {
    const values: ExportedValue[] = [];
    const bucket = `${this.name}_bucket`;
    const names = this.tree.labelNames;
    for (const series of this.series) {
      // One record shared by every line of the series, as prom-client's Histogram shares its labels.
      const sharedLabels = labelsOf(series, names);
      let cumulative = 0;
      for (const [i, bound] of this.bounds.entries()) {
        cumulative += series.counts[i]!;
        const labels = { le: bound };
        values.push({ labels, sharedLabels, value: cumulative, metricName: bucket, exemplar: null });
      }
      values.push(
        {
          labels: { le: "+Inf" },
          sharedLabels,
          value: series.count,
          metricName: bucket,
          exemplar: null,
        },
        { labels: {}, sharedLabels, value: series.sum, metricName: `${this.name}_sum` },
        { labels: {}, sharedLabels, value: series.count, metricName: `${this.name}_count` },
      );
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** As prom-client's reset: every series gone. */
  reset(): void {
    this.tree.clear();
    this.series = [];
  }
}
