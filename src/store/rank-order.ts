import { compareRank } from "../pool/choose-key";

/** Keys this many to a bucket: a take re-ranks one key, moving at most two buckets' worth of slots. */
const BUCKET_SIZE = 512;

interface Position {
  bucket: number;
  slot: number;
}

interface Ranked {
  rank: number;
  id: string;
}

/**
 * The rotation's order in memory: keys sorted by (rank, id), as chooseKey walks them, kept in sorted
 * buckets so that re-ranking one key of 100,000 costs two binary searches and a short splice instead
 * of moving the whole array. A key must be removed before its rank changes and added back after.
 */
export class RankOrder<K extends Ranked> {
  private buckets: K[][] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(key: K): void {
    this.count++;
    if (this.buckets.length === 0) {
      this.buckets.push([key]);
      return;
    }
    const b = this.bucketFor(key);
    const bucket = this.buckets[b]!;
    bucket.splice(this.slotIn(bucket, key), 0, key);
    if (bucket.length > BUCKET_SIZE * 2)
      this.buckets.splice(b, 1, bucket.slice(0, BUCKET_SIZE), bucket.slice(BUCKET_SIZE));
  }

  /** Removes a key at the rank it was added with; false when it is not here. */
  remove(key: K): boolean {
    if (this.buckets.length === 0) return false;
    const b = this.bucketFor(key);
    const bucket = this.buckets[b]!;
    const slot = this.slotIn(bucket, key);
    if (bucket[slot] !== key) return false;
    bucket.splice(slot, 1);
    this.count--;
    if (bucket.length === 0) this.buckets.splice(b, 1);
    return true;
  }

  clear(): void {
    this.buckets = [];
    this.count = 0;
  }

  /** The highest-ranked key, or undefined when empty. */
  last(): K | undefined {
    const bucket = this.buckets[this.buckets.length - 1];
    return bucket?.[bucket.length - 1];
  }

  /**
   * The first key from `start` on (by rank) that `accept` takes, wrapping around to the beginning
   * when nothing after `start` does (pass -Infinity-like LOWEST_RANK for no wrap). Walks in order, so
   * it costs the keys skipped: those resting, at their lease cap, or excluded.
   */
  find(start: number, accept: (key: K) => boolean): K | undefined {
    const from = this.positionOfRank(start);
    const end = { bucket: this.buckets.length, slot: 0 };
    const found = this.walk(from, end, accept);
    if (found || (from.bucket === 0 && from.slot === 0)) return found;
    return this.walk({ bucket: 0, slot: 0 }, from, accept);
  }

  *[Symbol.iterator](): IterableIterator<K> {
    for (const bucket of this.buckets) yield* bucket;
  }

  /** The first accepted key from position `from` up to (not including) position `to`. */
  private walk(from: Position, to: Position, accept: (key: K) => boolean): K | undefined {
    for (let b = from.bucket; b <= to.bucket && b < this.buckets.length; b++) {
      const bucket = this.buckets[b]!;
      const end = b === to.bucket ? to.slot : bucket.length;
      for (let s = b === from.bucket ? from.slot : 0; s < end; s++) {
        const key = bucket[s]!;
        if (accept(key)) return key;
      }
    }
    return undefined;
  }

  /** The first slot whose rank is at least `rank`. */
  private positionOfRank(rank: number): Position {
    let lo = 0;
    let hi = this.buckets.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const bucket = this.buckets[mid]!;
      if (bucket[bucket.length - 1]!.rank < rank) lo = mid + 1;
      else hi = mid;
    }
    if (lo === this.buckets.length) return { bucket: lo, slot: 0 };
    const bucket = this.buckets[lo]!;
    let l = 0;
    let h = bucket.length;
    while (l < h) {
      const m = (l + h) >> 1;
      if (bucket[m]!.rank < rank) l = m + 1;
      else h = m;
    }
    return { bucket: lo, slot: l };
  }

  /** The bucket a key belongs in: the first whose last key does not sort before it (or the last bucket). */
  private bucketFor(key: K): number {
    let lo = 0;
    let hi = this.buckets.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const bucket = this.buckets[mid]!;
      if (compareRank(bucket[bucket.length - 1]!, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private slotIn(bucket: K[], key: K): number {
    let lo = 0;
    let hi = bucket.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareRank(bucket[mid]!, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
