type Branch<Series> = Map<string, Branch<Series> | Series>;

/** The most labels a metric filed in a tree may have. */
export const MAX_LABELS = 4;

/**
 * A series' label values as the tree files them: the last one, and those before it (p0…p2), in
 * `labelNames` order. Plain fields rather than an array or a record: a per-key series in a
 * 100,000-key pool is then one object, not two, and every object in the heap is one more for each
 * garbage collection to mark.
 */
export interface LabelFields {
  readonly last: string;
  readonly p0: string | undefined;
  readonly p1: string | undefined;
  readonly p2: string | undefined;
}

/** A series as the tree files it: its label values, and the next series that differs from it only in the last label. */
export interface FiledSeries<Series> extends LabelFields {
  /** Set by the tree. */
  sibling: Series | undefined;
}

/** The fields for label values given in `labelNames` order (at most MAX_LABELS). */
export function labelFields(values: readonly string[]): LabelFields {
  const last = values.length - 1;
  return {
    last: values[last]!,
    p0: last > 0 ? values[0] : undefined,
    p1: last > 1 ? values[1] : undefined,
    p2: last > 2 ? values[2] : undefined,
  };
}

/** A series' labels as a record by name, as prom-client's registry reads them: made at a scrape, never kept. */
export function labelsOf(series: LabelFields, labelNames: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  const last = labelNames.length - 1;
  const before = [series.p0, series.p1, series.p2];
  for (let i = 0; i < last; i++) labels[labelNames[i]!] = before[i]!;
  labels[labelNames[last]!] = series.last;
  return labels;
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

  constructor(
    readonly labelNames: readonly string[],
    /** Makes the series for label values met for the first time (see labelFields), with `sibling` undefined. */
    private readonly create: (values: readonly string[]) => Series,
  ) {
    if (labelNames.length === 0) throw new Error("a LabelTree needs at least one label");
    if (labelNames.length > MAX_LABELS) throw new Error(`a LabelTree files at most ${MAX_LABELS} labels`);
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
    for (let series = head; series !== undefined; series = series.sibling) if (series.last === value) return series;
    // Met once per key in a large pool, so on the request path: the values are copied into fields, the
    // caller's array is not kept.
    const series = this.create(values);
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
