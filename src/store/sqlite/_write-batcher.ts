import type { Database } from "bun:sqlite";

interface PendingWrite {
  run: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/**
 * Micro-batching: writes submitted in the same turn of the event loop share one IMMEDIATE
 * transaction, so a burst of N takes and releases pays for one lock and one commit instead of N.
 * Each write is itself a bun:sqlite transaction (`db.transaction(fn).immediate`), so inside a batch
 * it runs as a savepoint: one that throws rolls back alone, and the others commit.
 */
export class WriteBatcher {
  private pending: PendingWrite[] = [];
  private scheduled = false;
  private readonly runBatch: { immediate(batch: PendingWrite[]): Array<{ ok: boolean; value: unknown }> };

  /** `beforeBatch` runs before a batch's transaction begins (the store settles the worker's writes there). */
  constructor(
    db: Database,
    private readonly beforeBatch: () => void = () => {},
  ) {
    this.runBatch = db.transaction((batch: PendingWrite[]) =>
      batch.map((write) => {
        try {
          return { ok: true, value: write.run() };
        } catch (error) {
          return { ok: false, value: error };
        }
      }),
    );
  }

  /** `run` must be a transaction of its own: alone in its turn, it runs unwrapped. */
  submit<R>(run: () => R): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.pending.push({ run, resolve: resolve as (value: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Runs everything pending now; the store calls it before closing. */
  flush(): void {
    this.scheduled = false;
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    if (batch.length === 1) {
      this.flushOne(batch[0]!);
      return;
    }
    let results: Array<{ ok: boolean; value: unknown }>;
    try {
      this.beforeBatch();
      results = this.runBatch.immediate(batch);
    } catch (error) {
      // The batch as a whole failed (e.g. the database stayed locked past busy_timeout).
      for (const write of batch) write.reject(error);
      return;
    }
    results.forEach((result, i) => {
      if (result.ok) batch[i]!.resolve(result.value);
      else batch[i]!.reject(result.value);
    });
  }

  /**
   * A write alone in its turn (the common case below a few hundred requests/s) runs in its own
   * IMMEDIATE transaction: wrapping it in a batch would only add a savepoint and its release.
   */
  private flushOne(write: PendingWrite): void {
    let value: unknown;
    try {
      value = write.run();
    } catch (error) {
      write.reject(error);
      return;
    }
    write.resolve(value);
  }
}
