import { Counter, type CounterConfiguration } from "prom-client";
import { LabelTree } from "./label-tree";

interface Series {
  labels: Record<string, string>;
  /** Added since the counter was last read. */
  pending: number;
  sibling: Series | undefined;
}

/**
 * A prom-client Counter whose increments are added up here and handed over whenever it is read (a
 * scrape, or `get()`), so what it reports is unchanged. prom-client builds, validates and looks up a
 * key for the label set on every `inc()`, a measurable share of the broker's CPU per take and
 * release; here a hot series costs one map lookup per label, and prom-client's work is paid once per
 * series per scrape.
 */
export class CounterTally {
  private readonly series: LabelTree<Series>;
  private touched: Series[] = [];

  /** Registers the counter, with no `collect` of its own. */
  constructor(config: Omit<CounterConfiguration<string>, "collect"> & { labelNames: readonly string[] }) {
    this.series = new LabelTree(config.labelNames, (labels) => ({ labels, pending: 0, sibling: undefined }));
    const tally = this;
    new Counter({
      ...config,
      collect() {
        tally.flushInto(this);
      },
    });
  }

  /** One more of the series with these label values, given in `labelNames` order. */
  add(...values: string[]): void {
    this.addBy(1, ...values);
  }

  /** `amount` (≥ 0) more of the series with these label values, given in `labelNames` order. */
  addBy(amount: number, ...values: string[]): void {
    // A zero (no usage reported) makes no series: it would never be read, and would cost memory per key.
    if (amount <= 0) return;
    const series = this.series.find(values);
    if (series.pending === 0) this.touched.push(series);
    series.pending += amount;
  }

  private flushInto(counter: Counter): void {
    const touched = this.touched;
    this.touched = [];
    for (const series of touched) {
      counter.inc(series.labels, series.pending);
      series.pending = 0;
    }
  }
}
