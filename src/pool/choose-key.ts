/**
 * Which key a take hands out: the reference rule every store must follow (SQLite walks its in-memory
 * order, PostgreSQL one SQL statement; tests run random pools through each and this, and require the
 * same choice).
 *
 * A key may be handed out when it is in rotation, its rest is over and it has a lease slot free.
 * A sticky session's own keys come first, in the session's order. Otherwise the lowest rank wins
 * (ties: the smaller id), starting at `start` — the beginning of the order, or a random point for the
 * random rotation, which wraps around to the beginning when nothing ready lies after it.
 */
import { LOWEST_RANK } from "./rotation";

export interface Candidate {
  id: string;
  rank: number;
  takeable: boolean;
  readyAt: number;
  inFlight: number;
  maxConcurrency: number | null;
}

export interface Choice {
  now: number;
  /** Where the walk starts (see pickStart). */
  start: number;
  exclude: readonly string[];
  /** A sticky session's keys, tried first in this order. */
  preferred?: readonly string[];
}

export function isReady(key: Candidate, now: number): boolean {
  return key.takeable && key.readyAt <= now && (key.maxConcurrency === null || key.inFlight < key.maxConcurrency);
}

/** The order the rotation walks: by rank, then by id so that equal ranks have one answer everywhere. */
export function compareRank(a: { rank: number; id: string }, b: { rank: number; id: string }): number {
  if (a.rank !== b.rank) return a.rank < b.rank ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export function chooseKey<K extends Candidate>(keys: readonly K[], choice: Choice): K | undefined {
  const usable = (key: K) => isReady(key, choice.now) && !choice.exclude.includes(key.id);
  for (const id of choice.preferred ?? []) {
    const key = keys.find((k) => k.id === id);
    if (key && usable(key)) return key;
  }
  let best: K | undefined;
  let bestAfterStart: K | undefined;
  for (const key of keys) {
    if (!usable(key)) continue;
    if (!best || compareRank(key, best) < 0) best = key;
    if (key.rank >= choice.start && (!bestAfterStart || compareRank(key, bestAfterStart) < 0)) bestAfterStart = key;
  }
  return choice.start === LOWEST_RANK ? best : (bestAfterStart ?? best);
}
