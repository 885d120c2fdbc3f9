import type { Database, SQLQueryBindings } from "bun:sqlite";

/**
 * One statement of a flush, run once per row of parameters. A flush is written as plain data (SQL text
 * and values) so the same writes run either on the store's connection, inside a transaction that needs
 * the file whole first, or on the checkpoint worker's connection, off the request thread.
 */
export interface WriteStep {
  sql: string;
  rows: SQLQueryBindings[][];
  /** Run right after a row of `sql` that changed a row, with the parameters at the same index. */
  onChange?: { sql: string; rows: SQLQueryBindings[][] };
  /** `sql` returns a row when it found what it looked for: the indexes of the rows that found nothing are reported. */
  reportMissing?: boolean;
}

/**
 * Runs `steps` in order on `db` (inside the caller's transaction) and returns, per step, the indexes of
 * its rows that found nothing (only for `reportMissing` steps; empty otherwise).
 *
 * It must stay self-contained — it reads only its arguments — because the checkpoint worker runs it from
 * its source text (see _checkpointer.ts). `db.query` keeps each statement compiled for the connection.
 */
export function runWriteSteps(db: Database, steps: readonly WriteStep[]): number[][] {
  const missing: number[][] = [];
  for (const step of steps) {
    const statement = db.query(step.sql);
    const then = step.onChange === undefined ? undefined : db.query(step.onChange.sql);
    const found: number[] = [];
    for (let i = 0; i < step.rows.length; i++) {
      const row = step.rows[i]!;
      if (step.reportMissing) {
        if (statement.get(...row) === null) found.push(i);
      } else if (statement.run(...row).changes > 0 && then !== undefined) {
        then.run(...step.onChange!.rows[i]!);
      }
    }
    missing.push(found);
  }
  return missing;
}
