type Branch<Series> = Map<string, Branch<Series> | Series>;

/**
 * The series of one metric by their label values, one map per label: finding a hot series costs a map
 * lookup per label, where prom-client builds, validates and hashes a key for the label set each time.
 */
export class LabelTree<Series> {
  private root: Branch<Series> = new Map();

  constructor(
    private readonly labelNames: readonly string[],
    /** Makes the series for a label set met for the first time. */
    private readonly create: (labels: Record<string, string>) => Series,
  ) {}

  /** The series with these label values, given in `labelNames` order; made on first use. */
  find(values: readonly string[]): Series {
    let branch = this.root;
    const last = values.length - 1;
    for (let i = 0; i < last; i++) {
      let next = branch.get(values[i]!) as Branch<Series> | undefined;
      if (!next) branch.set(values[i]!, (next = new Map()));
      branch = next;
    }
    let series = branch.get(values[last]!) as Series | undefined;
    if (series === undefined) {
      series = this.create(Object.fromEntries(this.labelNames.map((name, i) => [name, values[i]!])));
      branch.set(values[last]!, series);
    }
    return series;
  }

  /** Every series gone. */
  clear(): void {
    this.root = new Map();
  }
}
