export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Value at quantile q (0..1) of an ascending array; 0 for an empty one. */
export function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

export function ratio(numerator: number, denominator: number): number {
  return denominator > 0 ? Math.round((numerator / denominator) * 1000) / 1000 : 0;
}

/**
 * A subject's figure over a reference's as the median of the rounds' own ratios (round i of each, measured
 * seconds apart): a drift of the machine's speed that spans rounds cancels out, where the ratio of two
 * medians would set one side's fast rounds against the other's slow ones.
 */
export function pairedRatio(subject: readonly number[], reference: readonly number[]): number {
  return ratio(median(subject.map((value, round) => value / reference[round]!)), 1);
}

/**
 * A subject's figure less a reference's as the median of the rounds' own differences (round i of each,
 * measured seconds apart): as with pairedRatio, a window in which the whole machine stalled weighs on
 * the one round it fell in, not on every round's pooled samples of whichever subject it hit.
 */
export function pairedDifference(subject: readonly number[], reference: readonly number[]): number {
  return median(subject.map((value, round) => value - reference[round]!));
}

export function round2(value: number): number {
  return Math.round(value * 100) / 100;
}

export function rate(value: number): string {
  return Math.round(value).toLocaleString("en-US");
}
