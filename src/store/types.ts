import type { PairState } from "../pool/model-facts";
import type { BudgetWindow, SpendCaps, SpendView } from "../pool/budget";
import type { ModelRules } from "../pool/plan-model";
import type { FailureClass } from "../pool/classify";
import type { DomainError } from "../pool/errors";
import type { KeyHealth, KeyState, Outcome } from "../pool/key-state";
import type { UsageTotals, UsageWindow } from "../pool/usage";
import type { TokenCipher } from "./token-cipher";

/**
 * What the store needs to know about a pool to take from it: the rules decisions read (the key's and,
 * for requests that name a model, the (key, model) pair's), and its own.
 */
export interface PoolSettings extends ModelRules {
  leaseTtlSec: number;
  maxConcurrency?: number;
  /** Per-key limits, each counted in its own window. */
  rpm?: number;
  tpm?: number;
  dailyRequests?: number;
  /** Sticky sessions: a mapping lapses this long after the session last used its own key (default 3600). */
  sessionTtlSec?: number;
  /** Session mappings kept for the pool; the oldest go first (default 100,000). */
  maxSessions?: number;
}

/** Where a key came from: its pool's tokens file, the environment, or the admin API. */
export type KeyOrigin = "file" | "api" | "env";

export interface KeyInput {
  id: string;
  token: string;
  weight: number;
  /** The initial refresh token (from the tokens file), for pools with `refresh:`. */
  refreshToken?: string;
  /** Keys of one group share an account's limits: a rate limit or quota failure on one rests them all. */
  group?: string;
  /** Default "file". Keys the admin API added are kept by a sync that does not list them. */
  origin?: Exclude<KeyOrigin, "api">;
  /** The only models the key serves (the tokens file's `models=a|b`); absent: any model. */
  models?: string[];
  /** The key's own spend caps (the tokens file's budget_day= / budget_month=); absent: none. */
  budget?: SpendCaps;
}

/** A key's own limits, which win over its pool's; null (or absent) means the pool's. */
export interface KeyLimitOverrides {
  maxConcurrency?: number | null;
  rpm?: number | null;
  tpm?: number | null;
  dailyRequests?: number | null;
}

/** A key the admin API adds. */
export interface NewKey {
  id: string;
  token: string;
  weight: number;
  group?: string;
  limits?: KeyLimitOverrides;
  /** The key's own spend caps (micro-USD); absent: none. */
  budget?: SpendCaps;
}

/** What the admin API may change about a key; absent fields stay as they are, a null limit goes back to the pool's. */
export interface KeyChanges {
  enabled?: boolean;
  weight?: number;
  group?: string | null;
  limits?: KeyLimitOverrides;
  budget?: SpendCapChanges;
}

/** A change to a key's own spend caps (micro-USD): an absent window keeps its cap, null removes it. */
export interface SpendCapChanges {
  dayMicros?: number | null;
  monthMicros?: number | null;
}

/** A key as the admin API shows it: never the token. */
export interface KeyRecord {
  pool: string;
  id: string;
  masked: string;
  origin: KeyOrigin;
  state: KeyState;
  reason: string | null;
  enabled: boolean;
  weight: number;
  group: string | null;
  /** The key's own limits (null: the pool's). */
  limits: Required<KeyLimitOverrides>;
  inFlight: number;
  /** The key's own spend caps (micro-USD); absent: none. */
  budget?: SpendCaps;
}

export interface UsageQuery {
  pool?: string;
  window: UsageWindow;
}

export interface UsageReport {
  /** The first hour the window counts (epoch ms); 0 for `all`. */
  since: number;
  keys: KeyUsage[];
}

/** One key's usage over a window; `present` is false for a key since removed, whose usage still counts. */
export interface KeyUsage {
  pool: string;
  id: string;
  present: boolean;
  usage: UsageTotals;
}

/** A live sticky session and what its requests used while its mapping lived: the store keeps it on the session's row. */
export interface SessionUsage {
  pool: string;
  session: string;
  /** The session's own key. */
  keyId: string;
  /** Releases reported for the session: the gateway reports each answered request once. */
  requests: number;
  /** Every prompt token, cached or not. */
  inputTokens: number;
  outputTokens: number;
  cachedTokens: number;
  cacheWriteTokens: number;
  expiresAt: number;
}

export interface SessionUsageQuery {
  pool: string;
  /** The sessions with the most input tokens first; at most this many. */
  limit: number;
}

export interface SyncOptions {
  /**
   * Remove pools (and their keys and leases) that are not in the list: true for a daemon, which owns
   * the file's pools; false for a library process that only brings its own pools.
   */
  prune?: boolean;
  /**
   * Told of each pool a prune removed, once the sync has committed: a daemon warns, since another
   * process sharing the store with a different config loses that pool's keys silently otherwise.
   */
  onPruned?: (pool: string) => void;
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

export interface TakeOptions {
  /** Keys not to hand out (the gateway's retry must land on a different key). */
  exclude?: readonly string[];
  /**
   * A sticky session: the take prefers the key the session has used before (in the same
   * transaction as the pick), and a session seen for the first time is mapped to the key it gets.
   */
  session?: string;
  /**
   * The model the request is for: keys resting or denied for that model, and keys restricted to other
   * models, are skipped; the pool's model_limits count the take. Without it a take is the key's alone.
   */
  model?: string;
}

export type ReleaseTarget = { lease: string } | { id: string; pool?: string };

export interface ReleaseResult {
  pool: string;
  id: string;
  state: KeyState;
  reason: string | null;
  /** The answer said the key cannot use the release's model: retry on another key, as after a 429. */
  modelDenied?: boolean;
  /** The pair of the release's model, when the release named one and the pair cannot serve now. */
  pair?: { model: string } & ModelStatus;
}

export type BudgetAlert = "budget_warning" | "budget_exhausted";

/** Spend against caps in the current UTC day and month, as /status shows it (micro-USD). */
export type SpendStatus = Record<BudgetWindow, SpendView>;

/** A (key, model) pair that cannot serve now, as /status shows it; ready pairs are not listed. */
export interface ModelStatus {
  state: Extract<PairState, "cooling" | "denied">;
  until: number;
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
  lastCheckStatus: number | null;
  lastCheckLatencyMs: number | null;
  consecutiveFailures: number;
  /** When the checker will next probe the key; null when it is due as soon as a checker runs. */
  nextCheckAt: number | null;
  lastUsed: number | null;
  requests: number;
  errors: number;
  inFlight: number;
  /** The class of the last failure, and failures of it in a row (0 after a success). */
  failClass: FailureClass | null;
  rung: number;
  group: string | null;
  /** What the upstream's rate-limit headers last said is left; null until they said anything. */
  remaining: RemainingBudget | null;
  /** Sticky sessions whose own key this is. */
  sessions: number;
  /** The models this key cannot serve now (resting or denied), by name; empty when none. */
  models: Record<string, ModelStatus>;
  /** The only models the key serves (tokens file `models=`); null: any model. */
  onlyModels: string[] | null;
  /** The key's spend and caps; null unless the key or its pool has a cap. */
  spend: SpendStatus | null;
}

export interface RemainingBudget {
  requests: number | null;
  tokens: number | null;
  /** When the budget is full again. */
  resetAt: number | null;
}

/**
 * One recorded state transition: of the key, or, with `model`, of the key's pair for that model (whose
 * states are a pair's: ready, cooling, denied).
 */
export interface KeyEvent {
  at: number;
  pool: string;
  key: string;
  /** Set when the transition is the (key, model) pair's, not the key's. */
  model?: string;
  /**
   * Set when the event is a spend cap's threshold (80%: budget_warning, 100%: budget_exhausted), which
   * happens once per window; `key` is "" for the pool's own cap.
   */
  alert?: BudgetAlert;
  from: KeyState | PairState;
  to: KeyState | PairState;
  class: FailureClass | null;
  reason: string | null;
  until: number | null;
}

export interface EventQuery {
  pool?: string;
  key?: string;
  /** Only events after this time (epoch ms). */
  since?: number;
  /** At most this many: the first after `since`, or else the most recent. */
  limit: number;
}

export interface CheckRecord {
  ok: boolean;
  status?: number;
  latencyMs: number;
  reason: string;
  retryAfterSec?: number;
  /**
   * The token that was probed. When given and the key's token has changed since (a refresh or a
   * new tokens file), the result says nothing about the key any more and is dropped.
   */
  token?: string;
  /** The model the probe called (the check's `model:`): its answer also speaks for that pair. */
  model?: string;
}

/** A key whose check is due, claimed for one checker: the only other shape besides Lease that carries a token. */
export interface DueCheck {
  pool: string;
  id: string;
  token: string;
  /** When the token expires, if a refresh told us. */
  expiresAt: number | null;
}

/** The answer to "may I refresh this key's token now?". */
export type RefreshClaim =
  /** The caller holds the key's refresh lock until `finishRefresh` or the lock's expiry. */
  | { status: "claimed"; token: string; refreshToken: string | null }
  /** Another refresher (in this or another process) holds the lock. */
  | { status: "busy" }
  /** The token was replaced since the caller read it: nothing to refresh, use `token`. */
  | { status: "superseded"; token: string }
  | { status: "missing" };

/** How a claimed refresh ended. */
export type RefreshResult =
  | { status: "refreshed"; token: string; refreshToken?: string; expiresAt?: number }
  /** The key is quarantined with this reason (already free of token values). */
  | { status: "failed"; reason: string }
  /** Nothing was learned (e.g. shutdown): only the lock is given back. */
  | { status: "abandoned" };

/**
 * The pool's state, in domain words. Every method is atomic: two processes sharing one store
 * never hand out one exclusive lease twice. Implementations: sqlite/ (embedded default).
 */
export interface PoolStore {
  /** Declares the pools this process serves and makes the store's keys match the given lists. */
  syncPools(
    pools: Array<{ settings: PoolSettings; keys: KeyInput[] }>,
    options?: SyncOptions,
  ): Promise<Record<string, SyncResult>>;
  /** Hands out the best available key, or throws DomainError NO_KEY_AVAILABLE with retryAfterMs. */
  take(pool: string, options?: TakeOptions): Promise<Lease>;
  /** Reports how a lease (or, without a lease, a key) went; throws UNKNOWN_LEASE / UNKNOWN_KEY. */
  release(target: ReleaseTarget, outcome: Outcome): Promise<ReleaseResult>;
  /** Stores a probe's result, the state it implies and when the key is next due for a check. */
  recordCheck(pool: string, id: string, result: CheckRecord): Promise<void>;
  /**
   * Claims up to `limit` keys whose check is due (disabled keys never are), earliest first, and
   * pushes their next check `holdMs` ahead so no other checker takes them while they are probed.
   */
  claimDueChecks(pool: string, limit: number, holdMs: number): Promise<DueCheck[]>;
  /**
   * Takes the key's refresh lock until `lockUntil`, only if it is free and the key still holds
   * `staleToken`: one refresh per key at a time, across every process sharing the store.
   */
  beginRefresh(
    pool: string,
    id: string,
    claim: { owner: string; staleToken: string; lockUntil: number },
  ): Promise<RefreshClaim>;
  /** Stores a refresh's outcome and gives the lock back; ignored unless `owner` still holds it. Returns whether it applied. */
  finishRefresh(pool: string, id: string, owner: string, result: RefreshResult): Promise<boolean>;
  status(pool?: string): Promise<KeyStatus[]>;
  /** The pool's spend against its own caps; null when the pool has no `budget:`. */
  poolSpend(pool: string): Promise<SpendStatus | null>;
  /** Recent state transitions, oldest first (a bounded log: only the latest MAX_EVENTS are kept). */
  events(query: EventQuery): Promise<KeyEvent[]>;
  /** The id of the key in `pool` whose token is `token` (compared in constant time), or null. */
  findKeyByToken(pool: string, token: string): Promise<string | null>;
  /** The pool's keys with their origin, switch and own limits (tokens masked). */
  listKeys(pool: string): Promise<KeyRecord[]>;
  /**
   * Adds a key that the store keeps across syncs (origin "api"); the next take may hand it out.
   * @throws DomainError KEY_OWNED_BY_FILE / KEY_OWNED_BY_ENV when the pool's config defines that id, KEY_EXISTS for a taken id or token.
   */
  addKey(pool: string, key: NewKey): Promise<KeyRecord>;
  /**
   * Changes a key; `enabled` alone may change any key, anything else only a key the admin API added.
   * @throws DomainError UNKNOWN_KEY, KEY_OWNED_BY_FILE, KEY_OWNED_BY_ENV
   */
  updateKey(pool: string, id: string, changes: KeyChanges): Promise<KeyRecord>;
  /** Removes a key the admin API added, with its leases; its usage keeps counting in the pool's totals. */
  removeKey(pool: string, id: string): Promise<void>;
  /** Usage per key from the hourly ledger, over a window ending now. */
  usage(query: UsageQuery): Promise<UsageReport>;
  /** The pool's live sticky sessions with the most input tokens, and their token totals. */
  sessionUsage(query: SessionUsageQuery): Promise<SessionUsage[]>;
  poolNames(): string[];
  /**
   * Re-encrypts every stored secret under `cipher`, which becomes the store's key from then on.
   * Other processes still running with the old key must restart; run it with them stopped.
   */
  reencrypt(cipher: TokenCipher): Promise<{ rewritten: number }>;
  /**
   * Looks again at what the store stands on. Once it finds the state lost (a SQLite file deleted or
   * replaced under the process), every write (takes, releases, refreshes, changes to the key set) throws
   * that DomainError (STATE_FILE_LOST) and no check is due, until a look finds the file back; reads still answer.
   * Cheap (a few stat calls), but not for every request.
   */
  checkStorage(): StorageCheck;
  close(): Promise<void>;
}

/** What a store's look at its own storage found. */
export interface StorageCheck {
  /** Set while the store no longer writes where the other processes sharing it do. */
  lost?: DomainError;
  /** Risks that do not stop the store, each a sentence saying what to do (a state file other users can read). */
  warnings: string[];
  /** Where the state is kept, for the log line about a loss (never for an answer: paths stay out of those). */
  where?: string;
}
