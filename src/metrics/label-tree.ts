type Branch<Series> = Map<string, Branch<Series> | Series>;

/** A series as the tree files it: its labels, and the next series that differs from it only in the last label. */
export interface FiledSeries<Series> {
  readonly labels: Readonly<Record<string, string>>;
  /** Set by the tree. */
  sibling: Series | undefined;
}

/**
 * The series of one metric by their label values, one map per label but the last: finding a hot series
 * costs a map lookup per label, where prom-client builds, validates and hashes a key for the label set
 * each time. The last label's series are chained rather than mapped: its values are few (a class, a
 * direction), while the label before it can be a key id, and a map per key id would be most of the
 * memory a 100,000-key pool's metrics hold.
 */
export class LabelTree<Series extends FiledSeries<Series>> {
  private root: Branch<Series> = new Map();
  /** The chain of a metric with one label (no map above it). */
  private head: Series | undefined;
  private readonly lastName: string;

  constructor(
    private readonly labelNames: readonly string[],
    /** Makes the series for a label set met for the first time, with `sibling` undefined. */
    private readonly create: (labels: Record<string, string>) => Series,
  ) {
    if (labelNames.length === 0) throw new Error("a LabelTree needs at least one label");
    this.lastName = labelNames[labelNames.length - 1]!;
  }

  /** The series with these label values, given in `labelNames` order; made on first use. */
  find(values: readonly string[]): Series {
    const last = values.length - 1;
    const value = values[last]!;
    let branch = this.root;
    for (let i = 0; i < last - 1; i++) {
      let next = branch.get(values[i]!) as Branch<Series> | undefined;
      if (!next) branch.set(values[i]!, (next = new Map()));
      branch = next;
    }
    const head = last === 0 ? this.head : (branch.get(values[last - 1]!) as Series | undefined);
    for (let series = head; series !== undefined; series = series.sibling)
      if (series.labels[this.lastName] === value) return series;
    // Met once per key in a large pool, so on the request path: no arrays of pairs built on the way.
    const labels: Record<string, string> = {};
    for (let i = 0; i <= last; i++) labels[this.labelNames[i]!] = values[i]!;
    const series = this.create(labels);
    series.sibling = head;
    if (last === 0) this.head = series;
    else branch.set(values[last - 1]!, series);
    return series;
  }

  /** Every series gone. */
  clear(): void {
    this.root = new Map();
    this.head = undefined;
  }
}
