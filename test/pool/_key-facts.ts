import type { KeyFacts } from "../../src/pool/key-facts";
import { CLEAN_LADDER } from "../../src/pool/key-state";
import { EMPTY_WINDOWS } from "../../src/pool/limits";

/** A live key in pool "p" with nothing learned about it yet, for the planners' tests. */
export function liveKey(overrides: Partial<KeyFacts> = {}): KeyFacts {
  return {
    pool: "p",
    id: "k1",
    weight: 1,
    condition: { health: "live", reason: null, readyAt: 0 },
    takeable: true,
    rank: 10,
    inFlight: 0,
    maxConcurrency: null,
    group: null,
    ladder: CLEAN_LADDER,
    windows: EMPTY_WINDOWS,
    limits: {},
    consecutiveFailures: 0,
    nextCheckAt: 0,
    expiresAt: null,
    ...overrides,
  };
}
