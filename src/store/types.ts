import type { Rotation } from "../config/types";
import type { KeyHealth, KeyState, Outcome } from "../pool/key-state";

/** What the store needs to know about a pool to take from it. */
export interface PoolSettings {
  name: string;
  rotation: Rotation;
  cooldownSec: number;
  leaseTtlSec: number;
  maxConcurrency?: number;
  /** Retry-After hint when no key will free up by itself (all quarantined, dead or disabled). */
  recheckIntervalSec: number;
}

export interface KeyInput {
  id: string;
  token: string;
  weight: number;
}

export interface SyncResult {
  added: string[];
  updated: string[];
  removed: string[];
  kept: number;
}

/** A lease: the right to use one key until released or expired. The only shape that carries a token. */
export interface Lease {
  lease: string;
  pool: string;
  id: string;
  token: string;
  takenAt: number;
  expiresAt: number;
}

export type ReleaseTarget = { lease: string } | { id: string; pool?: string };

export interface ReleaseResult {
  pool: string;
  id: string;
  state: KeyState;
  reason: string | null;
}

/** A key as /status and the CLI show it: never the token, only its masked form. */
export interface KeyStatus {
  pool: string;
  id: string;
  masked: string;
  state: KeyState;
  health: KeyHealth;
  reason: string | null;
  until: number | null;
  weight: number;
  lastCheck: number | null;
  lastUsed: number | null;
  requests: number;
  errors: number;
  inFlight: number;
}

export interface CheckRecord {
  ok: boolean;
  status?: number;
  latencyMs: number;
  reason: string;
}

/**
 * The pool's state, in domain words. Every method is atomic: two processes sharing one store
 * never hand out one exclusive lease twice. Implementations: sqlite/ (embedded default).
 */
export interface PoolStore {
  /** Declares the pools this process serves and makes the store's keys match the given lists. */
  syncPools(pools: Array<{ settings: PoolSettings; keys: KeyInput[] }>): Promise<Record<string, SyncResult>>;
  /** Hands out the best available key, or throws DomainError NO_KEY_AVAILABLE with retryAfterMs. */
  take(pool: string): Promise<Lease>;
  /** Reports how a lease (or, without a lease, a key) went; throws UNKNOWN_LEASE / UNKNOWN_KEY. */
  release(target: ReleaseTarget, outcome: Outcome): Promise<ReleaseResult>;
  /** Stores a probe's result and the state it implies. */
  recordCheck(pool: string, id: string, result: CheckRecord): Promise<void>;
  status(pool?: string): Promise<KeyStatus[]>;
  poolNames(): string[];
  close(): Promise<void>;
}
