import type { Clock } from "../pool/clock";

/** The sliding window a budget counts over, and how finely: ten one-second buckets. */
const WINDOW_MS = 10_000;
const BUCKET_MS = 1_000;
const BUCKETS = WINDOW_MS / BUCKET_MS;

/**
 * A retry budget (as in Finagle's and Envoy's): retries after an upstream-side failure (5xx, timeout,
 * connection refused or reset) are allowed only while the retries of the last ten seconds stay
 * below `ratio` × the client requests of the same ten seconds. When the upstream fails everything,
 * upstream attempts stay at (1 + ratio) × client requests instead of (1 + max_retries) ×, so keypool
 * does not multiply the load on a service that is already struggling. A lone failure at low
 * traffic may still be retried once (0 retries < ratio × 1 request).
 *
 * Retries after a 401, 403 or 429 are not counted here: those say the *key* is spent or revoked,
 * the key rests or is quarantined, and moving to another key is what the gateway is for.
 */
export class RetryBudget {
  private readonly requests = new Array<number>(BUCKETS).fill(0);
  private readonly retries = new Array<number>(BUCKETS).fill(0);
  /** The bucket index (time / BUCKET_MS) that slot `index % BUCKETS` currently holds. */
  private readonly epochs = new Array<number>(BUCKETS).fill(-1);

  constructor(
    readonly ratio: number,
    private readonly clock: Clock,
  ) {}

  /** Counts a client request; call once per request, before its first attempt. */
  recordRequest(): void {
    this.requests[this.slot()]!++;
  }

  /** Whether one more retry fits; when it does, it is counted as spent. */
  tryRetry(): boolean {
    const slot = this.slot();
    if (sum(this.retries) >= this.ratio * sum(this.requests)) return false;
    this.retries[slot]!++;
    return true;
  }

  /** The bucket for now, emptied first if it last held an older second; stale buckets are cleared too. */
  private slot(): number {
    const epoch = Math.floor(this.clock.now() / BUCKET_MS);
    for (let i = 0; i < BUCKETS; i++) {
      if (this.epochs[i]! <= epoch - BUCKETS) {
        this.requests[i] = 0;
        this.retries[i] = 0;
        this.epochs[i] = -1;
      }
    }
    const index = ((epoch % BUCKETS) + BUCKETS) % BUCKETS;
    if (this.epochs[index] !== epoch) {
      this.requests[index] = 0;
      this.retries[index] = 0;
      this.epochs[index] = epoch;
    }
    return index;
  }
}

function sum(values: readonly number[]): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}

/** Whether a failed attempt was the upstream's trouble (budgeted) rather than the key's (not budgeted). */
export function isUpstreamSideFailure(status: number | undefined): boolean {
  return status === undefined || status >= 500;
}
