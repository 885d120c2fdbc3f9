/**
 * Everything a decision about one key reads, in the domain's words: what the stores load (from a row,
 * or from memory) before they call a planner, whatever their columns are called.
 */
import type { KeyCondition, KeyState, LadderPosition } from "./key-state";
import type { KeyLimits, UsageWindows } from "./limits";
import type { FailureClass, Rotation } from "./vocabulary";
import type { ClassifyRule } from "./classify";
import type { Ladders } from "./backoff";
import type { PriceTable } from "./pricing";
import type { SpendCaps, SpendWindows } from "./budget";

export interface KeyFacts {
  pool: string;
  id: string;
  weight: number;
  condition: KeyCondition;
  /** Whether the key was in rotation before this decision (see isTakeable). */
  takeable: boolean;
  rank: number;
  inFlight: number;
  /** Null: no cap on leases in flight. */
  maxConcurrency: number | null;
  group: string | null;
  ladder: LadderPosition;
  windows: UsageWindows;
  /** The limits the key is held to: its own, else its pool's. */
  limits: KeyLimits;
  consecutiveFailures: number;
  /** When the checker next probes the key (0: as soon as one runs). */
  nextCheckAt: number;
  /** When the key's token expires, if a refresh said. */
  expiresAt: number | null;
  /** What the key spent in the current UTC day and month; absent: nothing yet. */
  spend?: SpendWindows;
  /** The key's own spend caps (tokens file budget_day=/budget_month=, or the admin API). */
  budget?: SpendCaps;
}

/** The part of a pool's settings that decisions read (the store's PoolSettings is a superset). */
export interface PoolRules {
  name: string;
  rotation: Rotation;
  /** Rest after every take and after every unclassified failure; 0 disables it. */
  cooldownSec: number;
  /** Auth failures keep a key out this long when the pool has no health check to revive it. */
  quarantineSec?: number;
  /** Retry-After hint when no key will free up by itself (all quarantined, dead or disabled); also the check interval. */
  recheckIntervalSec: number;
  /** How often quarantined and dead keys are re-probed (default 60). */
  reviveIntervalSec?: number;
  /** Consecutive failed probes before a key is dead (default: the store's, 3). */
  failuresToDead?: number;
  /** Set when the pool refreshes tokens: checks are pulled forward to this long before a known expiry. */
  refreshAheadSec?: number;
  /** The pool's own failure rules, tried before the built-in ones. */
  classify?: readonly ClassifyRule[];
  /** Per-class backoff ladders; DEFAULT_LADDERS when unset. */
  ladders?: Ladders;
  /** Prices per model, for the usage ledger's estimated cost. */
  prices?: PriceTable;
  /** The pool's spend caps: its keys' spend together may not pass them. */
  budget?: SpendCaps;
}

/** What a decision needs besides the key: the time, a source of randomness and the pool's order. */
export interface DecisionContext {
  now: number;
  random: () => number;
  /**
   * Where a key (re-)entering rotation goes: lru first in line, round_robin last, … (see initialRank).
   * A function because it may cost the store a read, and most decisions never need it.
   */
  initialRank: () => number;
}

/** One recorded change of state, as planners describe it (stores add nothing but persistence). */
export interface PlannedEvent {
  from: KeyState;
  to: KeyState;
  class: FailureClass | null;
  reason: string | null;
  until: number | null;
}
