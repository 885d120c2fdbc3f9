/** Paints a cell after padding, so escape codes never count towards a column's width. */
export type CellPainter = (text: string, row: number, column: number) => string;

/**
 * Left-aligned columns separated by two spaces; plain text so it pipes well. `paint` (for a
 * terminal) colors cells; row -1 is the header.
 */
export function formatTable(header: string[], rows: Array<Array<string | number>>, paint?: CellPainter): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  return cells
    .map((r, row) =>
      r
        .map((cell, i) => {
          const padded = i === r.length - 1 ? cell : cell.padEnd(widths[i]!);
          return paint ? paint(padded, row - 1, i) : padded;
        })
        .join("  "),
    )
    .join("\n");
}
