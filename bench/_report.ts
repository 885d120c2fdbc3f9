/** What both benchmarks print around their figures: a banner first, a table of verdicts last. */

export function printBanner(bench: string, quick: boolean): void {
  console.log(
    `keypool ${bench} bench${quick ? " (quick)" : ""} — bun ${Bun.version}, ${navigator.hardwareConcurrency} CPUs\n`,
  );
}

/**
 * Prints `rows` (the first is the header) after a blank line, in columns two spaces apart: the first
 * and last columns (a name, a verdict) align left, the figures between them right.
 */
export function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => row[col]!.length)));
  const last = widths.length - 1;
  console.log("");
  for (const row of rows) {
    console.log(
      row
        .map((cell, col) => (col === 0 || col === last ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!)))
        .join("  ")
        .trimEnd(),
    );
  }
}

/** Seconds since `started` (a performance.now() reading), to one decimal, for the summary line. */
export function secondsSince(started: number): number {
  return Math.round((performance.now() - started) / 100) / 10;
}
