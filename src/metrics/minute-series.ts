/** One minute of one pool's traffic. `minute` is the epoch minute (ms / 60 000, floored). */
export interface MinuteCount {
  minute: number;
  requests: number;
  errors: number;
}

export const SERIES_MINUTES = 60;

/**
 * Requests and errors per pool per minute over the last hour, in memory: a ring of 60 buckets per
 * pool, each reused when its slot comes round again. It feeds the dashboard's chart; Prometheus
 * keeps the real history.
 */
export class MinuteSeries {
  private readonly rings = new Map<string, MinuteCount[]>();

  record(pool: string, isError: boolean, now: number): void {
    const minute = Math.floor(now / 60_000);
    const ring = this.ringOf(pool);
    const slot = minute % SERIES_MINUTES;
    let bucket = ring[slot]!;
    if (bucket.minute !== minute) bucket = ring[slot] = { minute, requests: 0, errors: 0 };
    bucket.requests++;
    if (isError) bucket.errors++;
  }

  /** The last hour for `pool`, oldest minute first, ending with the current one; empty minutes are zeros. */
  last(pool: string, now: number): MinuteCount[] {
    const current = Math.floor(now / 60_000);
    const ring = this.rings.get(pool);
    const out: MinuteCount[] = [];
    for (let minute = current - SERIES_MINUTES + 1; minute <= current; minute++) {
      const bucket = ring?.[minute % SERIES_MINUTES];
      out.push(bucket && bucket.minute === minute ? { ...bucket } : { minute, requests: 0, errors: 0 });
    }
    return out;
  }

  private ringOf(pool: string): MinuteCount[] {
    let ring = this.rings.get(pool);
    if (!ring) {
      ring = Array.from({ length: SERIES_MINUTES }, () => ({ minute: -1, requests: 0, errors: 0 }));
      this.rings.set(pool, ring);
    }
    return ring;
  }
}
