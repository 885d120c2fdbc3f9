import type { Rotation } from "./vocabulary";

/**
 * Every strategy is expressed as a *rank*: the store always hands out the available key with the
 * lowest rank (one index seek, O(log n)), and after a take or release the strategy decides the
 * key's new rank. This keeps the choice inside the store's atomic statement without scanning.
 *
 * - lru:         rank = when the key was last used (taken or released), kept strictly above every
 *                other rank so keys taken within the same millisecond still queue in take order
 * - round_robin: rank = one more than the highest rank in the pool, so keys cycle in a fixed order
 * - random:      rank = a fresh random number in [0, 1); the store starts its walk at a random
 *                point (see pickStart) and wraps, so each key's chance is the gap before it and a
 *                picked key lands somewhere new. (Always taking the lowest random rank would not do:
 *                keys never picked drift towards 1 and the last picked key keeps winning.)
 * - weighted:    stride scheduling — rank advances by 1/weight per take, so a key of weight 3
 *                is picked three times as often as one of weight 1, deterministically
 * - most_remaining: rank = minus the requests the upstream says are left (rate-limit headers), so the
 *                key with the most budget goes first; a key whose budget is unknown (or refills by the
 *                time its rest ends) ranks as if full. Each take spends one, so equal keys alternate.
 * - least_busy:  rank = leases in flight × BUSY_STEP + when last used: fewest in flight first, the
 *                least recently used among equals
 */

export interface RankContext {
  now: number;
  random: () => number;
  /** Highest rank among the pool's takeable keys (lru and round_robin only). */
  maxRank: number;
  /** The pool's virtual time for weighted (see virtualTimeOf; weighted only). */
  virtualTime: number;
}

export interface RankedKey {
  rank: number;
  weight: number;
  /** Leases in flight before this take, or after this release (least_busy only). */
  inFlight?: number;
}

/** Requests "left" for a key whose budget is unknown: more than any upstream reports. */
export const FULL_BUDGET = 1e12;

// Above any epoch-ms timestamp, so the in-flight count always decides before recency does.
// Exact in a double up to ~900 leases per key.
const BUSY_STEP = 1e13;

/** A least_busy rank. */
export function busyRank(inFlight: number, now: number): number {
  return Math.max(0, inFlight) * BUSY_STEP + now;
}

export function rankAfterTake(rotation: Rotation, key: RankedKey, ctx: RankContext): number {
  switch (rotation) {
    case "lru":
      return Math.max(ctx.now, ctx.maxRank + LRU_TIE_STEP);
    case "round_robin":
      return ctx.maxRank + 1;
    case "random":
      return ctx.random();
    case "weighted":
      // A key back from a long rest starts at the pool's virtual time instead of its stale rank,
      // so it does not win every pick until it "catches up".
      return Math.max(key.rank, ctx.virtualTime) + 1 / key.weight;
    case "most_remaining":
      return key.rank + 1;
    case "least_busy":
      return busyRank((key.inFlight ?? 0) + 1, ctx.now);
  }
}

/**
 * lru: a key held for a minute was used a minute later than it was taken. least_busy: one lease
 * fewer (`key.inFlight` is the count after the release). most_remaining: what the upstream says is
 * left, when it said (FULL_BUDGET when the key rests until its budget refills).
 */
export function rankAfterRelease(rotation: Rotation, key: RankedKey, now: number, remainingRequests?: number): number {
  switch (rotation) {
    case "lru":
      return Math.max(key.rank, now);
    case "least_busy":
      return busyRank(key.inFlight ?? 0, now);
    case "most_remaining":
      return remainingRequests === undefined ? key.rank : -remainingRequests;
    default:
      return key.rank;
  }
}

/**
 * A lease given back by expiry, not by a release: nothing was learned about the key, so only the ranks
 * that count leases in flight move (least_busy, keeping the key's recency). `key.inFlight` is the count after.
 */
export function rankAfterReclaim(rotation: Rotation, key: RankedKey & { lastUsed: number | null }): number {
  return rotation === "least_busy" ? busyRank(key.inFlight ?? 0, key.lastUsed ?? 0) : key.rank;
}

/** Where a new (or newly enabled) key enters the order: first in line for lru, last for round_robin. */
export function initialRank(rotation: Rotation, ctx: RankContext): number {
  switch (rotation) {
    case "lru":
      return 0;
    case "round_robin":
      return ctx.maxRank + 1;
    case "random":
      return ctx.random();
    case "weighted":
      return ctx.virtualTime;
    case "most_remaining":
      return -FULL_BUDGET;
    case "least_busy":
      return 0;
  }
}

/**
 * weighted's virtual time, from the pool's highest-ranked takeable key: the rank that key had when
 * it was last picked (its rank less one stride). Read from the stored keys, it is the same for every
 * process sharing the pool; it never runs ahead of the true virtual time (the highest rank any
 * pick had) and trails it by at most one stride.
 */
export function virtualTimeOf(top: { rank: number; weight: number } | null): number {
  return top ? top.rank - 1 / top.weight : 0;
}

/** Whether rankAfterTake needs the pool's highest rank, which costs the store one extra index read. */
export function needsMaxRank(rotation: Rotation): boolean {
  return rotation === "round_robin" || rotation === "lru";
}

// Well above the float spacing of epoch milliseconds (~0.0002), well below one millisecond.
const LRU_TIE_STEP = 0.001;

/** Below every rank. (Not -Infinity: SQLite compares a bound -Infinity measurably slower.) */
export const LOWEST_RANK = -Number.MAX_VALUE;

/** Where the store starts walking the rank order: a random point for random, the beginning otherwise. */
export function pickStart(rotation: Rotation, random: () => number): number {
  return rotation === "random" ? random() : LOWEST_RANK;
}
