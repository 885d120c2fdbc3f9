import { type BackoffConfig, LADDER_CLASSES, type LadderClass } from "./vocabulary";

/**
 * Backoff ladders: how long a key rests after its n-th failure of one class in a row. Rung 1 is
 * the first failure; a success (or a failure of another class) starts the ladder again.
 * Exponential when `factor` is set (`base × factor^(n-1)`), linear otherwise (`base + step × (n-1)`),
 * never above `max`.
 */
export interface Ladder {
  baseSec: number;
  factor?: number;
  stepSec?: number;
  maxSec: number;
}

export type Ladders = Readonly<Record<LadderClass, Ladder>>;

export const DEFAULT_LADDERS: Ladders = {
  // 1 min → 5 → 25 → 60 (cap)
  rate_limit: { baseSec: 60, factor: 5, maxSec: 3600 },
  // 5 h → 10 → 20 → 24 (cap): a spent quota rarely comes back within the hour
  quota: { baseSec: 5 * 3600, factor: 2, maxSec: 24 * 3600 },
  // 30 s × n up to 5 min: a busy upstream usually recovers quickly
  overloaded: { baseSec: 30, stepSec: 30, maxSec: 300 },
  timeout: { baseSec: 30, stepSec: 30, maxSec: 300 },
  network: { baseSec: 30, stepSec: 30, maxSec: 300 },
};

/** Each ladder rest is shortened by up to this fraction, so keys that failed together do not return together. */
export const BACKOFF_JITTER = 0.1;

export function isLadderClass(value: string | undefined): value is LadderClass {
  return (LADDER_CLASSES as readonly string[]).includes(value ?? "");
}

/**
 * The pool's ladders: the defaults with its `backoff:` overrides laid over them. Giving `factor`
 * makes a ladder exponential and giving `step_sec` makes it linear, whatever the default was.
 */
export function laddersOf(config: BackoffConfig | undefined): Ladders {
  if (!config) return DEFAULT_LADDERS;
  const ladders = { ...DEFAULT_LADDERS };
  for (const cls of LADDER_CLASSES) {
    const own = config[cls];
    if (!own) continue;
    const base = DEFAULT_LADDERS[cls];
    const shape =
      own.factor !== undefined
        ? { factor: own.factor }
        : own.stepSec !== undefined
          ? { stepSec: own.stepSec }
          : { factor: base.factor, stepSec: base.stepSec };
    ladders[cls] = {
      baseSec: own.baseSec ?? base.baseSec,
      maxSec: own.maxSec ?? Math.max(base.maxSec, own.baseSec ?? 0),
      ...shape,
    };
  }
  return ladders;
}

/** The rest of `rung` (1 = first failure) in milliseconds, before jitter. */
export function rungRestMs(ladder: Ladder, rung: number): number {
  const n = Math.max(0, rung - 1);
  const seconds =
    ladder.factor !== undefined ? ladder.baseSec * ladder.factor ** n : ladder.baseSec + (ladder.stepSec ?? 0) * n;
  return Math.round(Math.min(seconds, ladder.maxSec) * 1000);
}

/**
 * The rest a failure on `rung` earns. An upstream's Retry-After replaces the first rung outright
 * (it knows better than any default); on later rungs the longer of the two wins. `random` returns
 * [0, 1) and only ever shortens the ladder's rest, so the cap holds.
 */
export function backoffMs(ladder: Ladder, rung: number, random: () => number, retryAfterMs?: number): number {
  if (rung <= 1 && retryAfterMs !== undefined) return retryAfterMs;
  const jittered = Math.round(rungRestMs(ladder, rung) * (1 - BACKOFF_JITTER * random()));
  return Math.max(jittered, retryAfterMs ?? 0);
}
