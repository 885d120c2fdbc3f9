import { Database, type Statement } from "bun:sqlite";
import { type PoolctlImport, importPoolctlStateOnce } from "./_poolctl-import";
import type { RestoredKeyState } from "../poolctl-state";
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readSync } from "node:fs";
import { dirname } from "node:path";
import type { Clock } from "../../pool/clock";
import { ConfigError } from "../../config/errors";
import { DomainError } from "../../pool/errors";
import { isTakeable, type KeyCondition, type KeyState, type Outcome, stateOf, untilOf } from "../../pool/key-state";
import { maskToken } from "../../pool/mask";
import { windowStart } from "../../pool/usage";
import {
  LOWEST_RANK,
  busyRank,
  initialRank,
  needsMaxRank,
  pickStart,
  type RankContext,
  virtualTimeOf,
} from "../../pool/rotation";
import type {
  CheckRecord,
  DueCheck,
  EventQuery,
  KeyEvent,
  KeyChanges,
  KeyInput,
  KeyRecord,
  KeyStatus,
  Lease,
  NewKey,
  PoolSettings,
  PoolStore,
  RefreshClaim,
  RefreshResult,
  ReleaseResult,
  ReleaseTarget,
  SessionUsage,
  SessionUsageQuery,
  SpendStatus,
  StorageCheck,
  SyncOptions,
  SyncResult,
  TakeOptions,
  UsageQuery,
  UsageReport,
} from "../types";
import type { TokenCipher } from "../token-cipher";
import { MIGRATIONS } from "./migrations";
import { repairStatements } from "../stored-bounds";
import { mergeCaps, mergeOverrides, ownedError } from "../key-admin-rules";
import { budgetOf, factsOf, overridesOf, remainingOf } from "../key-columns";
import { AdminWrites } from "./_key-admin";
import { PolicyWrites } from "./_key-policy";
import { SecretVault } from "../secret-vault";
import { rewrapVault, verifyVault } from "./_token-vault";
import { SessionMap } from "./_sessions";
import { StateFileIdentity, networkFilesystemWarning } from "./_state-file-identity";
import { UsageLedger } from "./_usage-ledger";
import { WriteBatcher } from "./_write-batcher";
import type { KeyRow } from "./_key-row";
import { HotPath, LOG_MARK_SQL, noteCommit } from "./_hot-path";
import type { DecisionContext, KeyFacts, PlannedEvent } from "../../pool/key-facts";
import { planTake } from "../../pool/plan-take";
import { type GroupRest, type ReleasePlan, planGroupRest } from "../../pool/plan-release";
import type { PairEvent } from "../../pool/model-facts";
import {
  type PairPlan,
  planModelCheck,
  planModelGroupRest,
  planModelRelease,
  planModelTake,
} from "../../pool/plan-model";
import { NO_MODELS, modelFactsOf, modelStatusColumns, modelsColumnOf, pairStatusOf } from "../model-columns";
import { ModelPairs } from "./_model-pairs";
import { budgetExhausted, crossingEvents } from "../spend-rules";
import { planCapsChange } from "../../pool/plan-budget";
import { POOL_TOTAL, SpendCounters } from "./_spend";
import {
  type BudgetCrossing,
  type BudgetRest,
  EMPTY_SPEND,
  type SpendCaps,
  budgetRest,
  hasCaps,
  planSpend,
  spendView,
} from "../../pool/budget";
import { type ConditionPlan, planCheck, planEnabled, planRefreshFailed, planRefreshed } from "../../pool/plan-check";
import { Checkpointer, type CheckpointerOptions } from "./_checkpointer";
import { newLeaseId } from "../lease-id";

export interface SqliteStoreOptions {
  /** File path, or ":memory:". */
  path: string;
  clock: Clock;
  random?: () => number;
  /** How long a writer waits for another process's transaction before giving up. */
  busyTimeoutMs?: number;
  /** Consecutive failed probes before a key is declared dead, for pools that do not say. */
  failuresToDead?: number;
  /** Encrypts token values at rest; a file encrypted under another key (or none) fails to open with a ConfigError. */
  cipher?: TokenCipher;
  /** How the state file's checkpoints run on their own thread (none for ":memory:"). */
  checkpoints?: CheckpointerOptions;
}

interface LeaseRow {
  lease: string;
  pool: string;
  key_id: string;
  expires_at: number;
  /** The model the take named (schema step 10). */
  model: string | null;
}

// Expired leases are reclaimed at most this often; a take that finds nothing reclaims at once.
const RECLAIM_EVERY_MS = 1000;

// A take looks at the state file's identity at most this often: a stat on every take would be a
// noticeable share of its CPU, and a library process has no background timer to look for it.
const FILE_CHECK_EVERY_MS = 1000;

/** A take that excludes no key (most do): one empty list, not one per take. */
const NONE_EXCLUDED: readonly string[] = [];

/** The embedded default store: one SQLite file, shareable by several processes on one machine. */
export class SqliteStore implements PoolStore {
  private readonly db: Database;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly failuresToDead: number;
  private readonly pools = new Map<string, PoolSettings>();
  private nextReclaimAt = 0;
  private readonly sql: ReturnType<typeof prepareStatements>;
  private readonly writes: WriteBatcher;
  private readonly policy: PolicyWrites;
  private readonly admin: AdminWrites;
  private readonly ledger: UsageLedger;
  private readonly sessions: SessionMap;
  private readonly pairs: ModelPairs;
  private readonly spend: SpendCounters;
  private readonly vault: SecretVault;
  /** Takes and releases that change nothing other processes decide on, decided in memory (see _hot-path.ts). */
  private readonly hot: HotPath;
  private readonly pickStatementsByPool = new Map<string, ReturnType<typeof preparePickStatements>>();
  /** Undefined for ":memory:", which no other process can see. */
  private readonly file: StateFileIdentity | undefined;
  private readonly fileWarnings: string[] = [];
  private nextFileCheckAt = 0;
  private lost: DomainError | undefined;
  /** Runs the file's checkpoints off this thread; public so tests and benchmarks can drive `tick()`. */
  readonly checkpointer: Checkpointer | undefined;

  constructor(options: SqliteStoreOptions) {
    this.clock = options.clock;
    this.random = options.random ?? Math.random;
    this.failuresToDead = options.failuresToDead ?? 3;
    const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
    this.db = openDatabase(options.path, busyTimeoutMs);
    migrate(this.db);
    repairBounds(this.db, this.clock.now());
    this.vault = new SecretVault(options.cipher, `the state file ${options.path}`);
    try {
      verifyVault(this.db, this.vault);
    } catch (error) {
      this.db.close();
      throw error;
    }
    this.sql = prepareStatements(this.db);
    // A batch's transaction must not begin while the worker writes a flush: that flush goes first.
    this.writes = new WriteBatcher(this.db, () => this.checkpointer?.settleWrites());
    this.policy = new PolicyWrites(this.db);
    this.admin = new AdminWrites(this.db);
    this.ledger = new UsageLedger(this.db);
    this.sessions = new SessionMap(this.db);
    this.pairs = new ModelPairs(this.db);
    this.spend = new SpendCounters(this.db);
    this.hot = new HotPath({
      db: this.db,
      clock: this.clock,
      random: this.random,
      reveal: (sealed) => this.vault.reveal(sealed),
      settleWrites: () => this.checkpointer?.settleWrites(),
      writesInFlight: () => this.checkpointer?.writesInFlight ?? false,
      ownLogEntries: () => this.checkpointer?.lastWriteMarks,
      pairs: this.pairs,
    });
    this.hot.onFlushDue = () => this.flushHotLater();
    if (options.path !== ":memory:") {
      this.file = new StateFileIdentity(options.path);
      const network = networkFilesystemWarning(options.path);
      if (network) this.fileWarnings.push(network);
      this.checkpointer = new Checkpointer(this.db, options.path, options.checkpoints, busyTimeoutMs);
    }
  }

  checkStorage(): StorageCheck {
    this.nextFileCheckAt = this.clock.now() + FILE_CHECK_EVERY_MS;
    const problem = this.file?.problem();
    const wasLost = this.lost !== undefined;
    this.lost = problem === undefined ? undefined : new DomainError("STATE_FILE_LOST", `${problem}: ${LOST_ADVICE}`);
    // No commit, so no checkpoint either: a checkpoint here would move frames of a -wal that a
    // newcomer on the path may now share into the file only this process can see.
    if (wasLost !== (this.lost !== undefined)) this.db.exec(`PRAGMA query_only = ${this.lost ? 1 : 0}`);
    const extra = [this.file?.looseMode(), this.checkpointer?.failure].filter((w) => w !== undefined);
    const warnings = extra.length > 0 ? [...this.fileWarnings, ...extra] : this.fileWarnings;
    return { lost: this.lost, warnings, where: this.file?.path };
  }

  /** Throws once the state file is lost; looks again when the last look is older than FILE_CHECK_EVERY_MS. */
  private refuseIfLost(): void {
    if (this.file && this.clock.now() >= this.nextFileCheckAt) this.checkStorage();
    if (this.lost) throw this.lost;
  }

  poolNames(): string[] {
    return [...this.pools.keys()];
  }

  async syncPools(
    pools: Array<{ settings: PoolSettings; keys: KeyInput[] }>,
    options: SyncOptions = {},
  ): Promise<Record<string, SyncResult>> {
    this.refuseIfLost();
    this.flushHot();
    const pruned: string[] = [];
    const run = this.db.transaction(() => {
      const results: Record<string, SyncResult> = {};
      for (const { settings, keys } of pools) results[settings.name] = this.syncOnePool(settings, keys);
      const wanted = new Set(pools.map((p) => p.settings.name));
      for (const { pool } of options.prune === false ? [] : (this.sql.storedPools.all() as Array<{ pool: string }>)) {
        if (!wanted.has(pool)) {
          this.sql.deletePoolLeases.run(pool);
          this.sql.deletePoolKeys.run(pool);
          this.ledger.forgetPool(pool);
          this.sessions.forgetPool(pool);
          this.spend.forgetPool(pool);
          pruned.push(pool);
        }
      }
      return results;
    });
    const results = run.immediate();
    noteCommit();
    this.hot.reset();
    for (const pool of pruned) options.onPruned?.(pool);
    if (options.prune !== false) this.pools.clear();
    for (const { settings } of pools) this.pools.set(settings.name, settings);
    for (const { settings } of pools) this.hot.preload(settings);
    return results;
  }

  private syncOnePool(settings: PoolSettings, keys: KeyInput[]): SyncResult {
    const pool = settings.name;
    const existing = new Map<string, SourceRow>();
    for (const row of this.sql.poolKeySources.all(pool) as SourceRow[]) existing.set(row.id, row);
    const result: SyncResult = { added: [], updated: [], removed: [], kept: 0 };
    const maxConcurrency = settings.maxConcurrency ?? null;
    for (const key of keys) {
      const before = existing.get(key.id);
      existing.delete(key.id);
      const refreshToken = key.refreshToken ?? null;
      if (!before) {
        const rank = initialRank(settings.rotation, this.rankContext(pool, settings));
        this.sql.insertKey.run(
          pool,
          key.id,
          this.vault.seal(key.token),
          key.weight,
          rank,
          maxConcurrency,
          this.vault.seal(refreshToken),
        );
        result.added.push(key.id);
      } else if (this.vault.reveal(before.source_token) !== key.token) {
        // A new token under an old id is a different credential: what we knew no longer applies.
        // Compared with what the file said before, not with the stored token, which a refresh may have replaced.
        this.sql.replaceToken.run(
          this.vault.seal(key.token),
          key.weight,
          maxConcurrency,
          this.vault.seal(refreshToken),
          pool,
          key.id,
        );
        this.policy.forgetLearned(pool, key.id);
        this.pairs.forgetKey(pool, key.id);
        result.updated.push(key.id);
      } else if (this.vault.reveal(before.source_refresh_token) !== refreshToken) {
        // The operator supplied a new refresh token for the same credential: use it from now on.
        this.sql.replaceRefreshToken.run(this.vault.seal(refreshToken), key.weight, maxConcurrency, pool, key.id);
        result.updated.push(key.id);
      } else {
        this.sql.updateKeySettings.run(key.weight, maxConcurrency, pool, key.id);
        if (before.weight !== key.weight) result.updated.push(key.id);
        else result.kept++;
      }
      this.policy.setGroup(pool, key.id, key.group);
      // Most syncs change neither: a statement each would double a large pool's sync.
      const models = modelsColumnOf(key.models);
      // A key just inserted has neither (NULL), like one that had none.
      if ((before?.models ?? null) !== models) this.sql.setModels.run(models, pool, key.id);
      const caps = key.budget;
      if (
        (before?.budget_day_micros ?? null) !== (caps?.dayMicros ?? null) ||
        (before?.budget_month_micros ?? null) !== (caps?.monthMicros ?? null)
      )
        this.applyCaps(settings, key.id, caps);
      this.admin.setConfigOrigin(pool, key.id, key.origin ?? "file");
    }
    if (hasCaps(settings.budget)) this.spend.catchUp(pool, POOL_TOTAL, this.clock.now());
    for (const [id, row] of existing) {
      // The admin API's keys are not the config's to remove.
      if (row.origin === "api") {
        this.admin.applyPoolConcurrency(pool, id, settings.maxConcurrency);
        result.kept++;
        continue;
      }
      this.sql.deleteKeyLeases.run(pool, id);
      this.sql.deleteKey.run(pool, id);
      result.removed.push(id);
    }
    return result;
  }

  async take(pool: string, options: TakeOptions = {}): Promise<Lease> {
    this.refuseIfLost();
    const settings = this.settingsOf(pool);
    const exclude = options.exclude ?? NONE_EXCLUDED;
    this.reclaimLeasesOfTheDead();
    const { session, model } = options;
    const lease = this.hot.take(settings, exclude, session, model);
    if (lease) return lease;
    return this.takeInFile(settings, exclude, session, model);
  }

  /**
   * A take the hot path left to the file's transaction. A method of its own so that `take`, which
   * then awaits nothing, costs no suspended frame when the hot path answers.
   */
  private async takeInFile(
    settings: PoolSettings,
    exclude: readonly string[],
    session: string | undefined,
    model: string | undefined,
  ): Promise<Lease> {
    const pool = settings.name;
    const outcome = await this.writes.submit(() => this.takeTx.immediate(settings, exclude, session, model));
    if ("lease" in outcome) return outcome;
    if ("spent" in outcome) throw budgetExhausted(pool, outcome.spent, this.clock.now());
    const retry = `retry in ${Math.ceil(outcome.retryAfterMs / 1000)}s`;
    throw new DomainError(
      "NO_KEY_AVAILABLE",
      model === undefined
        ? `no key in pool "${pool}" is available right now; ${retry}`
        : `no key in pool "${pool}" can serve model "${model}" right now; ${retry}`,
      outcome.retryAfterMs,
    );
  }

  private readonly takeTx = this.lazyTransaction(
    (
      settings: PoolSettings,
      given: readonly string[],
      session?: string,
      model?: string,
    ): Lease | { retryAfterMs: number } | { spent: BudgetRest } => {
      const now = this.clock.now();
      // A pool that spent its budget hands nothing out until the window resets (its fallbacks take over).
      const spent = budgetRest(this.spend.of(settings.name, POOL_TOTAL), settings.budget, now);
      if (spent) return { spent };
      const start = pickStart(settings.rotation, this.random);
      // Keys that cannot serve the model are skipped as excluded keys are.
      const exclude = model === undefined ? given : [...given, ...this.pairs.unusableFor(settings.name, model, now)];
      // A sticky session tries its own key (then the one it is detouring on) before the rotation does.
      const sticky = session === undefined ? undefined : this.sessions.lookup(settings.name, session, now);
      let row = sticky ? this.pickPreferred(settings.name, now, sticky.candidates, exclude) : null;
      row ??= this.pick(settings.name, now, start, exclude, now >= this.nextReclaimAt);
      // Only worth a second look when a lease may have expired since the last sweep.
      if (!row && this.hasExpiredLeases(now)) row = this.pick(settings.name, now, start, exclude, true);
      if (!row) return { retryAfterMs: this.msUntilSoonestFree(settings, now, model) };

      const plan = planTake(factsOf(row, settings), settings, this.rankContext(settings.name, settings));
      if (plan.windows) this.policy.writeWindows(settings.name, row.id, plan.windows);
      if (plan.event) this.recordEvent(settings.name, row.id, plan.event, now);
      if (model !== undefined) this.countModelTake(settings, row.id, model, now);
      this.sql.markTaken.run(plan.rank, plan.condition.readyAt, plan.condition.reason, now, settings.name, row.id);

      const lease: Lease = {
        lease: newLeaseId(),
        pool: settings.name,
        id: row.id,
        token: this.vault.reveal(row.token),
        takenAt: now,
        expiresAt: now + settings.leaseTtlSec * 1000,
      };
      this.sql.insertLease.run(lease.lease, lease.pool, lease.id, now, lease.expiresAt, model ?? null);
      if (sticky)
        this.sessions.record(sticky, row.id, now, { ttlSec: settings.sessionTtlSec, max: settings.maxSessions });
      return lease;
    },
  );

  /** model_limits: the take counts against the model's rpm on the key, and rests the pair when it is spent. */
  private countModelTake(settings: PoolSettings, id: string, model: string, now: number): void {
    const plan = planModelTake(this.pairs.pairOf(settings.name, id, model), model, settings.modelLimits?.[model], now);
    if (!plan) return;
    this.pairs.write(settings.name, id, plan, now);
    if (plan.event) this.recordEvent(settings.name, id, plan.event, now);
  }

  /** The first of a session's keys that is ready now and not excluded. */
  private pickPreferred(pool: string, now: number, ids: readonly string[], exclude: readonly string[]): KeyRow | null {
    for (const id of ids) {
      if (exclude.includes(id)) continue;
      const row = this.pickStatements(pool).pickKey.get(now, LOWEST_RANK, id) as KeyRow | null;
      if (row) return row;
    }
    return null;
  }

  private pick(
    pool: string,
    now: number,
    start: number,
    exclude: readonly string[],
    reclaimFirst: boolean,
  ): KeyRow | null {
    if (reclaimFirst) this.reclaimExpiredLeases(now);
    // The common case (nothing excluded) keeps the simplest statement on the hot path.
    const get = (from: number) =>
      (exclude.length === 0
        ? this.pickStatements(pool).pick.get(now, from)
        : this.pickStatements(pool).pickExcluding.get(now, from, JSON.stringify(exclude))) as KeyRow | null;
    const fromStart = get(start);
    if (fromStart || start === LOWEST_RANK) return fromStart;
    // Wrap around: the walk began mid-order and found nothing ready after that point.
    return get(LOWEST_RANK);
  }

  /**
   * Leases a process took and never gave back (it crashed) lapse in the file: the slow path reclaims
   * them as it takes, and this does it for the hot path, which may not take slowly for a long time.
   */
  private reclaimLeasesOfTheDead(): void {
    const now = this.clock.now();
    if (now < this.nextReclaimAt) return;
    this.nextReclaimAt = now + RECLAIM_EVERY_MS;
    // Rare (only once a lease has lapsed), so done here and now: the take that follows sees the slot.
    if (this.hasExpiredLeases(now)) this.reclaimTx.immediate(now);
  }

  private readonly reclaimTx = this.lazyTransaction((now: number) => this.reclaimExpiredLeases(now));

  private hasExpiredLeases(now: number): boolean {
    return this.sql.anyExpiredLease.get(now) !== null;
  }

  /** Leases never released within their TTL give their slot back; the key's state is untouched. */
  private reclaimExpiredLeases(now: number): void {
    this.nextReclaimAt = now + RECLAIM_EVERY_MS;
    const expired = this.sql.expiredLeases.all(now) as LeaseRow[];
    for (const lease of expired) {
      this.sql.decrementInFlight.run(lease.pool, lease.key_id);
      this.sql.deleteLease.run(lease.lease);
      if (this.pools.get(lease.pool)?.rotation === "least_busy")
        this.policy.rankByBusy(lease.pool, lease.key_id, busyRank);
    }
  }

  private msUntilSoonestFree(settings: PoolSettings, now: number, model?: string): number {
    const fallback = settings.recheckIntervalSec * 1000;
    const ready =
      model === undefined
        ? (this.sql.soonestReady.get(settings.name, now) as { at: number | null } | null)?.at
        : this.pairs.soonestReadyFor(settings.name, model, now);
    const lease = this.sql.soonestLeaseExpiry.get(settings.name, now) as { at: number | null } | null;
    const candidates = [ready, lease?.at].filter((t): t is number => typeof t === "number" && t > now);
    if (candidates.length === 0) return fallback;
    return Math.max(1000, Math.min(...candidates) - now);
  }

  async release(target: ReleaseTarget, outcome: Outcome): Promise<ReleaseResult> {
    this.refuseIfLost();
    if (!("lease" in target)) return this.writes.submit(() => this.releaseTx.immediate(target, outcome));
    const settled = this.hot.release(target.lease, outcome, this.settingsOfPool);
    if (settled) return settled;
    return this.writes.submit(() => {
      try {
        return this.releaseTx.immediate(target, outcome);
      } finally {
        // After the transaction, whose flush wrote the lease if only memory had it.
        this.hot.forgetLease(target.lease);
      }
    });
  }

  private readonly releaseTx = this.lazyTransaction((target: ReleaseTarget, outcome: Outcome): ReleaseResult => {
    const now = this.clock.now();
    let pool: string;
    let id: string;
    let leasesGiven = 0;
    // The model the outcome is about: the release's, else the one the lease was taken for.
    let model = outcome.model;
    if ("lease" in target) {
      const lease = this.sql.deleteLeaseReturning.get(target.lease) as LeaseRow | null;
      if (!lease)
        throw new DomainError("UNKNOWN_LEASE", `lease "${target.lease}" is unknown or has expired; take a new key`);
      pool = lease.pool;
      id = lease.key_id;
      model ??= lease.model ?? undefined;
      leasesGiven = 1;
    } else {
      pool = this.findPoolOfKey(target.id, target.pool);
      id = target.id;
      // Without a lease id, the oldest lease on the key is the one being given back.
      const oldest = this.sql.oldestLeaseOfKey.get(pool, id) as LeaseRow | null;
      if (oldest) {
        this.sql.deleteLease.run(oldest.lease);
        leasesGiven = 1;
      }
    }
    const row = this.sql.keyById.get(pool, id) as KeyRow | null;
    if (!row) throw new DomainError("UNKNOWN_KEY", `key "${id}" is no longer in pool "${pool}"`);
    const settings = this.settingsOf(pool);
    const facts = { ...factsOf(row, settings), spend: this.spend.of(pool, id) };
    const modelFacts = model === undefined ? NO_MODELS : this.pairs.factsFor(pool, id, row.models, model);
    const context = this.decisionContext(pool, settings, now);
    const plan = planModelRelease({ ...facts, ...modelFacts }, model, outcome, settings, context, leasesGiven);
    if (plan.budget) this.policy.writeBudget(pool, id, plan.budget);
    if (plan.windows) this.policy.writeWindows(pool, id, plan.windows);
    this.ledger.record(
      pool,
      id,
      { ok: outcome.ok, failure: plan.failureClass, tokens: outcome.usage, costMicros: plan.costMicros },
      now,
    );
    if (outcome.session !== undefined) this.sessions.addUsage(pool, outcome.session, outcome.usage);
    const { condition } = plan;
    // One statement settles the lease, the key's condition and its counters.
    this.sql.settleRelease.run(
      leasesGiven,
      condition.health,
      condition.reason,
      condition.readyAt,
      plan.takeable ? 1 : 0,
      plan.rank,
      now,
      plan.penalised ? 1 : 0,
      pool,
      id,
    );
    const ladder = facts.ladder;
    if (
      plan.ladder.failClass !== ladder.failClass ||
      plan.ladder.rung !== ladder.rung ||
      plan.ladder.failUntil !== ladder.failUntil
    )
      this.policy.writeLadder(pool, id, plan.ladder);
    if (plan.event) this.recordEvent(pool, id, plan.event, now);
    if (plan.pair) this.writePair(pool, id, plan.pair, now);
    if (plan.spend) this.countSpend(settings, facts, plan, now);
    if (plan.groupRest) this.restGroup(settings, id, plan.groupRest, now);
    if (plan.reviveCheckAt !== undefined) this.sql.pullCheckForward.run(plan.reviveCheckAt, pool, id);
    const result: ReleaseResult = { pool, id, state: stateOf(condition, now), reason: condition.reason };
    if (plan.modelDenied) result.modelDenied = true;
    const pairStatus = plan.pair && pairStatusOf(plan.pair, now);
    if (pairStatus) result.pair = pairStatus;
    return result;
  });

  /**
   * A release's cost against the caps: the key's own (its rest is already in the plan's condition)
   * and its pool's. Kept only where a cap applies; each threshold crossed is logged once, for alerts.
   */
  private countSpend(settings: PoolSettings, key: KeyFacts, plan: ReleasePlan, now: number): void {
    const pool = settings.name;
    if (!hasCaps(key.budget) && !hasCaps(settings.budget)) return;
    this.spend.write(pool, key.id, plan.spend!);
    // The events name the state of the key whose release crossed the line (the pool's own have key "").
    const state = stateOf(plan.condition, now);
    this.logCrossings(pool, key.id, state, plan.budgetCrossings ?? [], now);
    if (!hasCaps(settings.budget)) return;
    const total = planSpend(this.spend.of(pool, POOL_TOTAL), plan.costMicros, plan.unpriced, settings.budget, now);
    this.spend.write(pool, POOL_TOTAL, total.spend);
    this.logCrossings(pool, POOL_TOTAL, state, total.crossings, now);
  }

  private logCrossings(
    pool: string,
    id: string,
    state: KeyState,
    crossings: readonly BudgetCrossing[],
    now: number,
  ): void {
    for (const event of crossingEvents(pool, id, state, crossings, now)) this.policy.event(event);
  }

  private writePair(pool: string, id: string, plan: PairPlan, now: number): void {
    this.pairs.write(pool, id, plan, now);
    if (plan.event) this.recordEvent(pool, id, plan.event, now);
  }

  /** The other keys of the group share the rest: of the key, or of the same model's pair. */
  private restGroup(settings: PoolSettings, id: string, rest: GroupRest, now: number): void {
    const pool = settings.name;
    for (const member of this.policy.groupMembers<KeyRow>(pool, rest.group, id)) {
      if (rest.model !== undefined) {
        const pair = planModelGroupRest(this.pairs.pairOf(pool, member.id, rest.model), rest, now);
        if (pair) this.writePair(pool, member.id, pair, now);
        continue;
      }
      const rested = planGroupRest(factsOf(member, settings), rest, now);
      if (rested) this.writeCondition(member, { ...rested, takeable: isTakeable(rested.condition), rank: member.rank });
    }
  }

  private recordEvent(pool: string, id: string, event: PlannedEvent | PairEvent, now: number): void {
    this.policy.event({ at: now, pool, key: id, ...event });
  }

  /** What a decision needs besides the key; a key re-entering rotation reads the pool's order only then. */
  private decisionContext(pool: string, settings: PoolSettings, now: number): DecisionContext {
    return {
      now,
      random: this.random,
      initialRank: () => initialRank(settings.rotation, this.rankContext(pool, settings)),
    };
  }

  private findPoolOfKey(id: string, pool?: string): string {
    if (pool !== undefined) {
      this.settingsOf(pool);
      if (!this.sql.keyById.get(pool, id)) throw new DomainError("UNKNOWN_KEY", `pool "${pool}" has no key "${id}"`);
      return pool;
    }
    const owners = this.poolNames().filter((name) => this.sql.keyById.get(name, id));
    if (owners.length === 0) throw new DomainError("UNKNOWN_KEY", `no pool has a key "${id}"`);
    if (owners.length > 1) {
      throw new DomainError("AMBIGUOUS_KEY", `key "${id}" exists in pools ${owners.join(", ")}; say which with "pool"`);
    }
    return owners[0]!;
  }

  async recordCheck(pool: string, id: string, result: CheckRecord): Promise<void> {
    this.recordCheckTx.immediate(pool, id, result);
  }

  private readonly recordCheckTx = this.lazyTransaction((pool: string, id: string, result: CheckRecord) => {
    const now = this.clock.now();
    const settings = this.settingsOf(pool);
    const row = this.sql.keyById.get(pool, id) as KeyRow | null;
    if (!row) throw new DomainError("UNKNOWN_KEY", `pool "${pool}" has no key "${id}"`);
    if (result.token !== undefined && result.token !== this.vault.reveal(row.token)) return;
    const pair =
      result.model === undefined
        ? null
        : planModelCheck(
            this.pairs.pairOf(pool, id, result.model),
            result.model,
            { ok: result.ok, status: result.status, body: result.reason },
            settings,
            now,
          );
    if (pair) this.writePair(pool, id, pair, now);
    // A probe of a model the key may not use still reached the provider with the key: the key is fine.
    const forKey = pair?.state.access === "denied" ? { ...result, ok: true } : result;
    const plan = planCheck(
      factsOf(row, settings),
      forKey,
      settings,
      this.decisionContext(pool, settings, now),
      this.failuresToDead,
    );
    this.writeCondition(row, plan);
    if (plan.ladder) this.policy.writeLadder(pool, id, plan.ladder);
    this.sql.recordCheck.run(
      now,
      result.ok ? 1 : 0,
      result.status ?? null,
      Math.round(result.latencyMs),
      result.reason,
      plan.consecutiveFailures,
      plan.nextCheckAt,
      pool,
      id,
    );
  });

  async claimDueChecks(pool: string, limit: number, holdMs: number): Promise<DueCheck[]> {
    // Nothing is due on a lost file: the checker pauses instead of failing a pass every tick.
    if (this.file && this.lost) return [];
    this.settingsOf(pool);
    if (limit <= 0) return [];
    const now = this.clock.now();
    const rows = this.claimTx.immediate(pool, now, limit, now + holdMs);
    return rows.map((row) => ({ pool, id: row.id, token: this.vault.reveal(row.token), expiresAt: row.expires_at }));
  }

  private readonly claimTx = this.lazyTransaction(
    (pool: string, now: number, limit: number, holdUntil: number) =>
      this.sql.claimDue.all(pool, now, limit, holdUntil) as Array<Pick<KeyRow, "id" | "token" | "expires_at">>,
  );

  async beginRefresh(
    pool: string,
    id: string,
    claim: { owner: string; staleToken: string; lockUntil: number },
  ): Promise<RefreshClaim> {
    this.refuseIfLost();
    return this.beginRefreshTx.immediate(pool, id, claim);
  }

  private readonly beginRefreshTx = this.lazyTransaction(
    (pool: string, id: string, claim: { owner: string; staleToken: string; lockUntil: number }): RefreshClaim => {
      const now = this.clock.now();
      const row = this.sql.keyById.get(pool, id) as KeyRow | null;
      if (!row) return { status: "missing" };
      const current = this.vault.reveal(row.token);
      if (current !== claim.staleToken) return { status: "superseded", token: current };
      // One conditional write is the whole lock: it succeeds for exactly one caller while the lock is free.
      // It matches the stored value just read, not the plain token: encrypted, equal tokens differ.
      const won = this.sql.takeRefreshLock.get(claim.owner, claim.lockUntil, pool, id, row.token, now) as Pick<
        KeyRow,
        "token" | "refresh_token"
      > | null;
      if (won) return { status: "claimed", token: current, refreshToken: this.vault.reveal(won.refresh_token) };
      return { status: "busy" };
    },
  );

  async finishRefresh(pool: string, id: string, owner: string, result: RefreshResult): Promise<boolean> {
    return this.finishRefreshTx.immediate(pool, id, owner, result);
  }

  private readonly finishRefreshTx = this.lazyTransaction(
    (pool: string, id: string, owner: string, result: RefreshResult) => {
      const row = this.sql.keyById.get(pool, id) as KeyRow | null;
      // A lapsed lock may have passed to someone else, and a synced tokens file clears it: either way, not ours to write.
      if (!row || row.refresh_owner !== owner) return false;
      const now = this.clock.now();
      if (result.status === "refreshed") {
        const settings = this.settingsOf(pool);
        this.writeCondition(row, planRefreshed(factsOf(row, settings), this.decisionContext(pool, settings, now)));
        this.sql.storeRefreshedToken.run(
          this.vault.seal(result.token),
          this.vault.seal(result.refreshToken ?? null),
          result.expiresAt ?? null,
          pool,
          id,
        );
      } else if (result.status === "failed") {
        const settings = this.settingsOf(pool);
        const facts = factsOf(row, settings);
        const plan = planRefreshFailed(facts, result.reason, settings, this.decisionContext(pool, settings, now));
        this.writeCondition(row, plan);
        this.sql.scheduleCheck.run(plan.nextCheckAt, pool, id);
      }
      this.sql.releaseRefreshLock.run(pool, id);
      return true;
    },
  );

  /** Writes a planned condition, its place in the rotation and its event. */
  private writeCondition(row: KeyRow, plan: ConditionPlan): void {
    const { condition } = plan;
    this.sql.writeCondition.run(
      condition.health,
      condition.reason,
      condition.readyAt,
      plan.takeable ? 1 : 0,
      plan.rank,
      row.pool,
      row.id,
    );
    if (plan.event) this.recordEvent(row.pool, row.id, plan.event, this.clock.now());
  }

  async poolSpend(pool: string): Promise<SpendStatus | null> {
    const settings = this.settingsOf(pool);
    if (!hasCaps(settings.budget)) return null;
    this.flushHot();
    return spendView(this.spend.of(pool, POOL_TOTAL), settings.budget, this.clock.now());
  }

  async status(pool?: string): Promise<KeyStatus[]> {
    this.flushHot();
    if (pool !== undefined) this.settingsOf(pool);
    const now = this.clock.now();
    const rows = (pool === undefined ? this.sql.allKeys.all() : this.sql.poolKeys.all(pool)) as KeyRow[];
    const sessions = new Map<string, Map<string, number>>();
    const sessionsOf = (name: string) =>
      sessions.get(name) ?? sessions.set(name, this.sessions.countsByKey(name, now)).get(name)!;
    const pairs = this.pairs.pairsByKey(pool);
    const spent = this.spend.all(pool);
    return rows.map((row) => {
      const settings = this.pools.get(row.pool);
      const budget = budgetOf(row);
      const capped = hasCaps(budget) || hasCaps(settings?.budget);
      const spend = capped ? spendView(spent.get(`${row.pool}\n${row.id}`) ?? EMPTY_SPEND, budget, now) : null;
      const condition = conditionOf(row);
      return {
        pool: row.pool,
        id: row.id,
        masked: maskToken(this.vault.reveal(row.token)),
        state: stateOf(condition, now),
        health: row.health,
        reason: row.reason,
        until: untilOf(condition, now),
        weight: row.weight,
        lastCheck: row.last_check,
        lastCheckStatus: row.last_check_status,
        lastCheckLatencyMs: row.last_check_latency_ms,
        consecutiveFailures: row.consecutive_failures,
        nextCheckAt: row.next_check_at === 0 ? null : row.next_check_at,
        lastUsed: row.last_used,
        requests: row.requests,
        errors: row.errors,
        inFlight: row.in_flight,
        failClass: row.fail_class,
        rung: row.rung,
        group: row.key_group,
        remaining: remainingOf(row),
        sessions: sessionsOf(row.pool).get(row.id) ?? 0,
        spend,
        ...modelStatusColumns(modelFactsOf(row.models, pairs.get(`${row.pool}\n${row.id}`) ?? []), now),
      };
    });
  }

  async events(query: EventQuery): Promise<KeyEvent[]> {
    this.flushHot();
    if (query.pool !== undefined) this.settingsOf(query.pool);
    return this.policy.events(query);
  }

  async findKeyByToken(pool: string, token: string): Promise<string | null> {
    this.settingsOf(pool);
    // Every key is compared, in constant time, so timing says nothing about which key (if any) matched.
    return this.keyHoldingToken(pool, token);
  }

  async listKeys(pool: string): Promise<KeyRecord[]> {
    this.flushHot();
    this.settingsOf(pool);
    const now = this.clock.now();
    return (this.sql.poolKeys.all(pool) as KeyRow[]).map((row) => this.recordOf(row, now));
  }

  async addKey(pool: string, key: NewKey): Promise<KeyRecord> {
    this.refuseIfLost();
    return this.addKeyTx.immediate(pool, key);
  }

  private readonly addKeyTx = this.lazyTransaction((pool: string, key: NewKey): KeyRecord => {
    const settings = this.settingsOf(pool);
    const existing = this.sql.keyById.get(pool, key.id) as KeyRow | null;
    if (existing && existing.origin !== "api") throw ownedError(existing.origin, pool, key.id);
    if (existing)
      throw new DomainError(
        "KEY_EXISTS",
        `pool "${pool}" already has a key "${key.id}"; pick another id, or change that key with PATCH`,
      );
    const twin = this.keyHoldingToken(pool, key.token);
    if (twin !== null) throw new DomainError("KEY_EXISTS", `pool "${pool}" already holds this token as key "${twin}"`);
    const rank = initialRank(settings.rotation, this.rankContext(pool, settings));
    this.sql.insertKey.run(
      pool,
      key.id,
      this.vault.seal(key.token),
      key.weight,
      rank,
      settings.maxConcurrency ?? null,
      null,
    );
    this.admin.markApiKey(pool, key.id);
    this.admin.writeLimits(pool, key.id, mergeOverrides(NO_OVERRIDES, key.limits ?? {}), settings.maxConcurrency);
    this.policy.setGroup(pool, key.id, key.group);
    this.applyCaps(settings, key.id, key.budget);
    return this.recordOf(this.sql.keyById.get(pool, key.id) as KeyRow, this.clock.now());
  });

  async updateKey(pool: string, id: string, changes: KeyChanges): Promise<KeyRecord> {
    this.refuseIfLost();
    return this.updateKeyTx.immediate(pool, id, changes);
  }

  private readonly updateKeyTx = this.lazyTransaction((pool: string, id: string, changes: KeyChanges): KeyRecord => {
    const settings = this.settingsOf(pool);
    const row = this.sql.keyById.get(pool, id) as KeyRow | null;
    if (!row) throw new DomainError("UNKNOWN_KEY", `pool "${pool}" has no key "${id}"`);
    // Switching a key off and on is an operator's call on any key; what the key *is* belongs to whoever defined it.
    const reshapes =
      changes.weight !== undefined ||
      changes.group !== undefined ||
      changes.limits !== undefined ||
      changes.budget !== undefined;
    if (reshapes && row.origin !== "api") throw ownedError(row.origin, pool, id);
    if (changes.weight !== undefined) this.admin.setWeight(pool, id, changes.weight);
    if (changes.group !== undefined) this.policy.setGroup(pool, id, changes.group ?? undefined);
    if (changes.limits)
      this.admin.writeLimits(pool, id, mergeOverrides(overridesOf(row), changes.limits), settings.maxConcurrency);
    if (changes.enabled !== undefined) {
      const plan = planEnabled(
        factsOf(row, settings),
        changes.enabled,
        this.decisionContext(pool, settings, this.clock.now()),
      );
      if (plan) this.writeCondition(row, plan);
    }
    if (changes.budget) this.applyCaps(settings, id, mergeCaps(budgetOf(row), changes.budget));
    return this.recordOf(this.sql.keyById.get(pool, id) as KeyRow, this.clock.now());
  });

  /**
   * A key's own caps set or changed: counted from what the usage ledger already holds for the current
   * windows, and the key rests at once if that reaches a cap (or comes back if its spent cap went up).
   */
  private applyCaps(settings: PoolSettings, id: string, caps: SpendCaps | undefined): void {
    const pool = settings.name;
    const now = this.clock.now();
    if (this.sql.setBudget.run(caps?.dayMicros ?? null, caps?.monthMicros ?? null, pool, id).changes === 0) return;
    if (hasCaps(caps)) this.spend.catchUp(pool, id, now);
    const row = this.sql.keyById.get(pool, id) as KeyRow;
    const facts = { ...factsOf(row, settings), spend: this.spend.of(pool, id) };
    const plan = planCapsChange(facts, this.decisionContext(pool, settings, now));
    if (plan) this.writeCondition(row, plan);
  }

  async removeKey(pool: string, id: string): Promise<void> {
    this.refuseIfLost();
    this.removeKeyTx.immediate(pool, id);
  }

  private readonly removeKeyTx = this.lazyTransaction((pool: string, id: string): void => {
    this.settingsOf(pool);
    const row = this.sql.keyById.get(pool, id) as KeyRow | null;
    if (!row) throw new DomainError("UNKNOWN_KEY", `pool "${pool}" has no key "${id}"`);
    if (row.origin !== "api") throw ownedError(row.origin, pool, id);
    this.sql.deleteKeyLeases.run(pool, id);
    this.sql.deleteKey.run(pool, id);
  });

  async usage(query: UsageQuery): Promise<UsageReport> {
    this.flushHot();
    if (query.pool !== undefined) this.settingsOf(query.pool);
    const since = windowStart(query.window, this.clock.now());
    return { since, keys: this.ledger.query(query.pool, since) };
  }

  async sessionUsage(query: SessionUsageQuery): Promise<SessionUsage[]> {
    this.flushHot();
    this.settingsOf(query.pool);
    return this.sessions.top(query.pool, this.clock.now(), query.limit);
  }

  /** The id of the key in `pool` holding `token`; every key is compared, in constant time. */
  private keyHoldingToken(pool: string, token: string): string | null {
    let found: string | null = null;
    for (const row of this.sql.poolTokens.all(pool) as Array<{ id: string; token: string }>) {
      if (this.vault.holds(row.token, token) && found === null) found = row.id;
    }
    return found;
  }

  private recordOf(row: KeyRow, now: number): KeyRecord {
    return {
      pool: row.pool,
      id: row.id,
      masked: maskToken(this.vault.reveal(row.token)),
      origin: row.origin,
      state: stateOf(conditionOf(row), now),
      reason: row.reason,
      enabled: row.health !== "disabled",
      weight: row.weight,
      group: row.key_group,
      limits: overridesOf(row),
      inFlight: row.in_flight,
      budget: budgetOf(row),
    };
  }

  /**
   * Re-encrypts every stored secret under `cipher`, which becomes this store's key, then vacuums so
   * no copy under the old key stays in free pages. Processes still running with the old key must restart.
   */
  async reencrypt(cipher: TokenCipher): Promise<{ rewritten: number }> {
    this.writes.flush();
    this.flushHot();
    // The copy in memory holds tokens sealed under the old key.
    this.hot.reset();
    const result = rewrapVault(this.db, this.vault, cipher);
    this.db.exec("VACUUM");
    return result;
  }

  /** Takes over what poolctl's JSON `state_file` says of the keys synced so far, once per state file. */
  importPoolctlState(source: string, states: readonly RestoredKeyState[]): PoolctlImport {
    this.writes.flush();
    this.flushHot();
    return importPoolctlStateOnce(this.db, source, states, this.poolNames());
  }

  async close(): Promise<void> {
    this.writes.flush();
    this.hot.close();
    this.flushHot();
    await this.checkpointer?.stop();
    // No checkpoint of ours into a file others no longer see; SQLite skips its own on close for a
    // file that has moved, and cannot take the lock for it while another process has the file open.
    if (this.lost) return this.db.close();
    try {
      this.db.exec("PRAGMA optimize");
      this.db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    } finally {
      this.db.close();
    }
  }

  /** settingsOf as a function of its own, made once: the hot path's release calls it. */
  private readonly settingsOfPool = (pool: string): PoolSettings => this.settingsOf(pool);

  private settingsOf(pool: string): PoolSettings {
    const settings = this.pools.get(pool);
    if (!settings) {
      const known = this.poolNames().join(", ") || "none";
      throw new DomainError("UNKNOWN_POOL", `pool "${pool}" does not exist (pools: ${known})`);
    }
    return settings;
  }

  private rankContext(pool: string, settings: PoolSettings): RankContext {
    const top = () => this.pickStatements(pool).top.get() as { rank: number; weight: number } | null;
    const maxRank = needsMaxRank(settings.rotation) ? (top()?.rank ?? 0) : 0;
    // Read each time rather than remembered: other processes on the file move it too.
    const virtualTime = settings.rotation === "weighted" ? virtualTimeOf(top()) : 0;
    return { now: this.clock.now(), random: this.random, maxRank, virtualTime };
  }

  /** The pick statements of one pool, prepared on first use. */
  private pickStatements(pool: string): ReturnType<typeof preparePickStatements> {
    let statements = this.pickStatementsByPool.get(pool);
    if (!statements) {
      statements = preparePickStatements(this.db, pool);
      this.pickStatementsByPool.set(pool, statements);
    }
    return statements;
  }

  /** Builds a bun:sqlite transaction once, on first use, so field initialisers can reference `this.db`. */
  private lazyTransaction<A extends unknown[], R>(fn: (...args: A) => R) {
    let tx: ReturnType<Database["transaction"]> | undefined;
    const get = () => (tx ??= this.db.transaction(fn));
    return {
      immediate: (...args: A): R => {
        // What only memory knows goes first, in a transaction of its own, so this one decides on the whole
        // truth and rolling it back (an unknown lease, say) loses none of it.
        this.flushHot();
        try {
          return get().immediate(...args) as R;
        } finally {
          this.hot.markStale();
          noteCommit();
        }
      },
    };
  }

  /**
   * Writes what the hot path holds only in memory, now (inside a caller's batch, as its own savepoint),
   * after any flush the worker is still writing: whatever runs next decides on the whole file.
   */
  private flushHot(): void {
    this.checkpointer?.settleWrites();
    if (!this.hot.dirty || this.lost) return;
    this.hotFlushTx ??= this.db.transaction(() => this.hot.flushInto());
    this.hotFlushTx.immediate();
  }

  private hotFlushTx: ReturnType<Database["transaction"]> | undefined;

  /**
   * What the flush timer does, now: writes what only memory holds. A file-backed store hands the writes
   * to the checkpoint worker, so their cost (for a large pool, a row on a page of its own per key used)
   * never holds up a request; a store in memory, or one whose worker failed, batches them with whatever
   * else is written in this turn. Resolves once written; rejects if the write failed, whose counts are
   * then lost as a kill -9 would lose them (the state every process decides on was never in them).
   */
  async flushInBackground(): Promise<void> {
    const worker = this.checkpointer;
    if (!worker || worker.failure !== undefined) return this.writes.submit(() => this.flushHot());
    if (!this.hot.dirty || this.lost) return;
    // Only `settle` is kept while the worker writes: the steps hold an array per key and statement (in a
    // large pool, per take), which would otherwise live that long and reach the old generation.
    const { steps, settle } = this.hot.collectFlush();
    const written = await worker.write(steps, LOG_MARK_SQL);
    settle(written.missing);
    this.hot.noteOwnLogEntries(written.marks);
  }

  private flushHotLater(): void {
    this.flushInBackground().catch(() => {
      // Lost, as the method says; the next flush carries on.
    });
  }
}

/** What the tokens file last said about a key. */
interface SourceRow {
  id: string;
  origin: KeyRow["origin"];
  weight: number;
  source_token: string;
  source_refresh_token: string | null;
  models: string | null;
  budget_day_micros: number | null;
  budget_month_micros: number | null;
}

const LOST_ADVICE =
  "keys are no longer handed out from it, since other processes on that path would hand out the same ones; " +
  "restart keypool (and every process sharing the file) so they all use the file now at that path";

const NO_OVERRIDES = { maxConcurrency: null, rpm: null, tpm: null, dailyRequests: null };

function conditionOf(row: KeyRow): KeyCondition {
  return { health: row.health, reason: row.reason, readyAt: row.ready_at };
}

function openDatabase(path: string, busyTimeoutMs: number): Database {
  if (path !== ":memory:") {
    refuseOrphanedLog(path);
    refuseForeignFile(path);
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // Created before SQLite opens it so the file never exists with looser permissions;
    // SQLite gives the -wal and -shm files the same mode as the database.
    if (!existsSync(path)) closeSync(openSync(path, "a", 0o600));
    chmodSync(path, 0o600);
  }
  const db = new Database(path, { create: true, strict: true });
  db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
  enableWal(db, busyTimeoutMs);
  // NORMAL in WAL mode survives a process crash (kill -9); a power loss may drop the last commits.
  db.exec("PRAGMA synchronous = NORMAL");
  // 64 MiB of page cache: a pool of 100,000 keys stays in memory, so a take costs the same as with 10.
  db.exec("PRAGMA cache_size = -65536");
  // A file's checkpoints run on the Checkpointer's thread (it turns wal_autocheckpoint off here), so
  // no commit on this one copies the log into the database file and syncs it.
  return db;
}

/**
 * A -wal or -shm without its database means the file was deleted while a process had it open (or
 * removed only in part): a new file opened next to them would read their pages as its own, and
 * the process still holding them would go on leasing keys nobody else can see.
 */
function refuseOrphanedLog(path: string): void {
  if (existsSync(path)) return;
  const leftovers = [`${path}-wal`, `${path}-shm`].filter((file) => existsSync(file));
  if (leftovers.length === 0) return;
  const files = leftovers.join(" and ");
  throw new ConfigError([
    `${files} exist without the state file ${path}: ` +
      "it was deleted while a process had it open, or removed only in part — " +
      `stop every keypool using it, then restore ${path} or delete ${files}`,
  ]);
}

/** The first 16 bytes of every SQLite database file. */
const SQLITE_HEADER = "SQLite format 3\0";

/**
 * A state_file that names some other file (a JSON state, a tokens file, a typo'd path) is refused before
 * keypool touches it: opening it would fail anyway, and the chmod below would change a file that is not ours.
 */
function refuseForeignFile(path: string): void {
  let head: string;
  try {
    const fd = openSync(path, "r");
    try {
      const bytes = Buffer.alloc(SQLITE_HEADER.length);
      head = bytes.subarray(0, readSync(fd, bytes, 0, bytes.length, 0)).toString("latin1");
    } finally {
      closeSync(fd);
    }
  } catch {
    return; // missing (created below) or unreadable (SQLite says why)
  }
  if (head.length === 0 || head === SQLITE_HEADER) return;
  throw new ConfigError([
    `state_file: ${path} is not a SQLite database (keypool's state file) — point state_file at a new path, ` +
      "or move that file away; keypool left it untouched",
  ]);
}

/**
 * Switching a new file to WAL takes an exclusive lock, and SQLite answers SQLITE_BUSY at once
 * instead of calling the busy handler: two processes opening one fresh file together would fail
 * here. So it is retried, for as long as busy_timeout allows any other wait.
 */
function enableWal(db: Database, busyTimeoutMs: number): void {
  const deadline = performance.now() + busyTimeoutMs;
  for (;;) {
    try {
      db.exec("PRAGMA journal_mode = WAL");
      return;
    } catch (error) {
      if ((error as { code?: string }).code !== "SQLITE_BUSY" || performance.now() >= deadline) throw error;
      Bun.sleepSync(5);
    }
  }
}

function migrate(db: Database): void {
  const apply = db.transaction(() => {
    const current = (db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
    if (current > MIGRATIONS.length) {
      throw new Error(
        `the database schema (version ${current}) is newer than this keypool understands (${MIGRATIONS.length}); upgrade keypool`,
      );
    }
    for (let version = current; version < MIGRATIONS.length; version++) {
      db.exec(MIGRATIONS[version]!);
      db.exec(`PRAGMA user_version = ${version + 1}`);
    }
  });
  // IMMEDIATE so two processes starting on a fresh file do not both try to create the tables.
  apply.immediate();
}

/** Puts values an older keypool (or a hand edit) stored out of range back in range: see stored-bounds. */
function repairBounds(db: Database, now: number): void {
  const statements = repairStatements("sqlite", now);
  db.transaction(() => {
    for (const sql of statements) db.run(sql);
  }).immediate();
}

/**
 * The statements that walk the pick index, with the pool name written into the SQL as a literal.
 * Measured on SQLite 3.54: with the pool as a bound parameter the ordered index walk costs ~9 µs a
 * call, with a literal ~0.7 µs — and these run on every take.
 */
function preparePickStatements(db: Database, pool: string) {
  const literal = `'${pool.replaceAll("'", "''")}'`;
  const ready = `pool = ${literal} AND takeable = 1 AND rank >= ?2 AND ready_at <= ?1
                 AND (max_concurrency IS NULL OR in_flight < max_concurrency)`;
  return {
    pick: db.query(`SELECT * FROM keys WHERE ${ready} ORDER BY rank LIMIT 1`),
    pickExcluding: db.query(
      `SELECT * FROM keys WHERE ${ready} AND id NOT IN (SELECT value FROM json_each(?3)) ORDER BY rank LIMIT 1`,
    ),
    // One given key, if the pick would take it now: a sticky session's own key.
    pickKey: db.query(`SELECT * FROM keys WHERE ${ready} AND id = ?3`),
    top: db.query(`SELECT rank, weight FROM keys WHERE pool = ${literal} AND takeable = 1 ORDER BY rank DESC LIMIT 1`),
  };
}

function prepareStatements(db: Database) {
  const q = (sql: string): Statement => db.query(sql);
  return {
    markTaken: q(`UPDATE keys SET rank = ?1, ready_at = ?2, reason = ?3, last_used = ?4,
                    in_flight = in_flight + 1, requests = requests + 1
                  WHERE pool = ?5 AND id = ?6`),
    insertLease: q(
      `INSERT INTO leases (lease, pool, key_id, taken_at, expires_at, model) VALUES (?1, ?2, ?3, ?4, ?5, ?6)`,
    ),
    leaseById: q(`SELECT * FROM leases WHERE lease = ?1`),
    oldestLeaseOfKey: q(`SELECT * FROM leases WHERE pool = ?1 AND key_id = ?2 ORDER BY taken_at LIMIT 1`),
    deleteLease: q(`DELETE FROM leases WHERE lease = ?1`),
    anyExpiredLease: q(`SELECT 1 FROM leases WHERE expires_at <= ?1 LIMIT 1`),
    expiredLeases: q(`SELECT * FROM leases WHERE expires_at <= ?1`),
    decrementInFlight: q(`UPDATE keys SET in_flight = MAX(0, in_flight - 1) WHERE pool = ?1 AND id = ?2`),
    soonestReady: q(`SELECT MIN(ready_at) AS at FROM keys WHERE pool = ?1 AND takeable = 1 AND ready_at > ?2`),
    soonestLeaseExpiry: q(`SELECT MIN(expires_at) AS at FROM leases WHERE pool = ?1 AND expires_at > ?2`),
    keyById: q(`SELECT * FROM keys WHERE pool = ?1 AND id = ?2`),
    writeCondition: q(`UPDATE keys SET health = ?1, reason = ?2, ready_at = ?3, takeable = ?4, rank = ?5
                       WHERE pool = ?6 AND id = ?7`),
    settleRelease: q(`UPDATE keys SET in_flight = MAX(0, in_flight - ?1), health = ?2, reason = ?3, ready_at = ?4,
                        takeable = ?5, rank = ?6, last_used = ?7, errors = errors + ?8
                      WHERE pool = ?9 AND id = ?10`),
    setBudget: q(`UPDATE keys SET budget_day_micros = ?1, budget_month_micros = ?2 WHERE pool = ?3 AND id = ?4
                     AND (budget_day_micros IS NOT ?1 OR budget_month_micros IS NOT ?2)`),
    setModels: q(`UPDATE keys SET models = ?1 WHERE pool = ?2 AND id = ?3 AND models IS NOT ?1`),
    deleteLeaseReturning: q(`DELETE FROM leases WHERE lease = ?1 RETURNING pool, key_id, model`),
    recordCheck: q(`UPDATE keys SET last_check = ?1, last_check_ok = ?2, last_check_status = ?3,
                      last_check_latency_ms = ?4, last_check_reason = ?5, consecutive_failures = ?6, next_check_at = ?7
                    WHERE pool = ?8 AND id = ?9`),
    scheduleCheck: q(`UPDATE keys SET next_check_at = ?1 WHERE pool = ?2 AND id = ?3`),
    pullCheckForward: q(`UPDATE keys SET next_check_at = MIN(next_check_at, ?1) WHERE pool = ?2 AND id = ?3`),
    claimDue: q(`UPDATE keys SET next_check_at = ?4
                 WHERE pool = ?1 AND id IN (
                   SELECT id FROM keys WHERE pool = ?1 AND next_check_at <= ?2 AND health != 'disabled'
                   ORDER BY next_check_at LIMIT ?3)
                 RETURNING id, token, expires_at`),
    takeRefreshLock: q(`UPDATE keys SET refresh_owner = ?1, refresh_lock_until = ?2
                        WHERE pool = ?3 AND id = ?4 AND token = ?5 AND (refresh_owner IS NULL OR refresh_lock_until <= ?6)
                        RETURNING token, refresh_token`),
    storeRefreshedToken: q(`UPDATE keys SET token = ?1, refresh_token = COALESCE(?2, refresh_token), expires_at = ?3,
                              consecutive_failures = 0
                            WHERE pool = ?4 AND id = ?5`),
    releaseRefreshLock: q(`UPDATE keys SET refresh_owner = NULL, refresh_lock_until = 0 WHERE pool = ?1 AND id = ?2`),
    storedPools: q(`SELECT DISTINCT pool FROM keys`),
    poolKeySources: q(`SELECT id, origin, weight, source_token, source_refresh_token, models, budget_day_micros,
                         budget_month_micros FROM keys WHERE pool = ?1`),
    insertKey:
      q(`INSERT INTO keys (pool, id, token, weight, rank, max_concurrency, source_token, refresh_token, source_refresh_token)
                  VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?3, ?7, ?7)`),
    replaceToken: q(`UPDATE keys SET token = ?1, source_token = ?1, weight = ?2, max_concurrency = ?3,
                       refresh_token = ?4, source_refresh_token = ?4, expires_at = NULL, next_check_at = 0,
                       refresh_owner = NULL, refresh_lock_until = 0, health = 'unknown', last_check = NULL,
                       last_check_ok = NULL, last_check_status = NULL, last_check_latency_ms = NULL, last_check_reason = NULL,
                       reason = 'token replaced', ready_at = 0, takeable = 1, consecutive_failures = 0
                     WHERE pool = ?5 AND id = ?6`),
    replaceRefreshToken:
      q(`UPDATE keys SET refresh_token = ?1, source_refresh_token = ?1, weight = ?2, max_concurrency = ?3
                            WHERE pool = ?4 AND id = ?5`),
    updateKeySettings: q(`UPDATE keys SET weight = ?1, max_concurrency = ?2 WHERE pool = ?3 AND id = ?4`),
    deleteKey: q(`DELETE FROM keys WHERE pool = ?1 AND id = ?2`),
    deleteKeyLeases: q(`DELETE FROM leases WHERE pool = ?1 AND key_id = ?2`),
    deletePoolKeys: q(`DELETE FROM keys WHERE pool = ?1`),
    deletePoolLeases: q(`DELETE FROM leases WHERE pool = ?1`),
    allKeys: q(`SELECT * FROM keys ORDER BY pool, id`),
    poolKeys: q(`SELECT * FROM keys WHERE pool = ?1 ORDER BY id`),
    poolTokens: q(`SELECT id, token FROM keys WHERE pool = ?1`),
  };
}
