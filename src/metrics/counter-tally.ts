import type { Registry } from "prom-client";
import { type FiledSeries, LabelTree, labelFields, labelsOf } from "./label-tree";

interface Series extends FiledSeries<Series> {
  value: number;
}

interface ExportedMetric {
  name: string;
  help: string;
  type: string;
  aggregator: string;
  values: Array<{ value: number; labels: Record<string, string> }>;
}

/**
 * A Prometheus counter counted on every take and release. prom-client's Counter builds, validates and
 * hashes the label set on every `inc()`, a measurable share of the broker's CPU per take and release,
 * and keeps a hash string and an entry of its own per series: per key, in a 100,000-key pool. Here a
 * hot series costs one map lookup per label but the last, each series is one small object (its label
 * values are fields of it; the records the registry reads are made at a scrape), and the
 * counter registers itself as a metric of its own, exporting what prom-client's Counter would (series
 * in the order they were first counted).
 */
export class CounterTally {
  readonly name: string;
  readonly help: string;
  readonly type = "counter";
  readonly aggregator = "sum";
  private readonly tree: LabelTree<Series>;
  private series: Series[] = [];

  constructor(config: { name: string; help: string; labelNames: readonly string[]; registers: Registry[] }) {
    this.name = config.name;
    this.help = config.help;
    this.tree = new LabelTree(config.labelNames, (values) => {
      const series: Series = { ...labelFields(values), value: 0, sibling: undefined };
      this.series.push(series);
      return series;
    });
    for (const registry of config.registers) registry.registerMetric(this as never);
  }

  /** One more of the series with these label values, given in `labelNames` order. */
  add(...values: string[]): void {
    this.addBy(1, ...values);
  }

  /** `amount` (≥ 0) more of the series with these label values, given in `labelNames` order. */
  addBy(amount: number, ...values: string[]): void {
    // A zero (no usage reported) makes no series, as prom-client's Counter is never told of it; a
    // count that is not a finite number would spoil the series for good.
    if (!(amount > 0 && Number.isFinite(amount))) return;
    this.tree.find(values).value += amount;
  }

  /** What the registry reads, at a scrape or for JSON: prom-client's shape for a counter. */
  async get(): Promise<ExportedMetric> {
    const names = this.tree.labelNames;
    const values = this.series.map((series) => ({ value: series.value, labels: labelsOf(series, names) }));
    return { help: this.help, name: this.name, type: this.type, values, aggregator: this.aggregator };
  }

  /** As prom-client's reset: every series gone. */
  reset(): void {
    this.tree.clear();
    this.series = [];
  }
}
