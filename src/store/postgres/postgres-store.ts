import { budgetExhausted, crossingEvents } from "../spend-rules";
import type { SQL, TransactionSQL } from "bun";
import type { Clock } from "../../pool/clock";
import { DomainError } from "../../pool/errors";
import { type KeyCondition, type Outcome, afterTake, stateOf, untilOf } from "../../pool/key-state";
import {
  type BudgetRest,
  type SpendCaps,
  type SpendWindows,
  EMPTY_SPEND,
  budgetRest,
  hasCaps,
  planSpend,
  spendView,
} from "../../pool/budget";
import type { DecisionContext, KeyFacts, PlannedEvent } from "../../pool/key-facts";
import type { ModelLimit } from "../../pool/vocabulary";
import { hasRequestLimits } from "../../pool/limits";
import { maskToken } from "../../pool/mask";
import { planCheck, planEnabled, planRefreshFailed, planRefreshed } from "../../pool/plan-check";
import { type GroupRest, planGroupRest } from "../../pool/plan-release";
import { type ModelFacts, onePair, pairStateOf } from "../../pool/model-facts";
import {
  type ModelReleasePlan,
  planModelCheck,
  planModelGroupRest,
  planModelRelease,
  planModelTake,
} from "../../pool/plan-model";
import { planTake } from "../../pool/plan-take";
import { windowStart } from "../../pool/usage";
import { type RankContext, initialRank, needsMaxRank, pickStart, rankAfterReclaim } from "../../pool/rotation";
import type {
  CheckRecord,
  DueCheck,
  EventQuery,
  KeyChanges,
  KeyEvent,
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
import { type EventRow, MAX_EVENTS, eventOfRow } from "../event-log";
import { mergeCaps, mergeOverrides, ownedError } from "../key-admin-rules";
import { planCapsChange } from "../../pool/plan-budget";
import { budgetOf, factsOf, overridesOf, remainingOf } from "../key-columns";
import {
  type PairColumns,
  modelFactsOf,
  modelStateOf,
  modelStatusColumns,
  modelsColumnOf,
  pairColumnsOf,
} from "../model-columns";
import {
  type PairJson,
  type PairRow,
  type PairWrite,
  type SeenPair,
  changesPair,
  pairEventOf,
  pairJsonSql,
  pairWriteSql,
  readPair,
  seenPairOf,
} from "./_pairs";
import { type Fields, type KeyRow, Params, type VersionedRow, conditionFields, eventOf } from "./_key-row";
import { type GuardedAnswer, guardedReleaseSql, releaseFields } from "./_release";
import { type ConnectionOptions, DEFAULT_TIMEOUT_SEC, isRetryable, openClient, withDeadline } from "./_connection";
import { maskDatabaseUrl } from "./database-url";
import { HotPath } from "./_hot-path";
import { PostgresSessions } from "./_sessions";
import { POOL_TOTAL, PostgresSpend } from "./_spend";
import { type TakeVariant, VIRTUAL_TIME, pickSql, takeSql } from "./_take";
import { PostgresUsageLedger } from "./_usage-ledger";
import { SecretVault } from "../secret-vault";
import { rewrapVault, verifyVault } from "./_vault";
import { MIGRATIONS } from "./migrations";
import { repairStatements } from "../stored-bounds";
import { newLeaseId } from "../lease-id";

export interface PostgresStoreOptions extends ConnectionOptions {
  clock: Clock;
  random?: () => number;
  /** Consecutive failed probes before a key is declared dead, for pools that do not say. */
  failuresToDead?: number;
  /** Encrypts token values at rest, as the SQLite store does. */
  cipher?: TokenCipher;
  /** Wraps the client every call goes through: tests count round trips with it. */
  wrapClient?: (sql: SQL) => SQL;
  /** Decide simple takes and releases in memory (see _hot-path.ts); default true. False: every one in SQL. */
  hotPath?: boolean;
}

type Db = SQL;

// Expired leases are reclaimed at most this often per process; a take that finds nothing reclaims at once.
const RECLAIM_EVERY_MS = 1000;
// Lease ids of takes given up on at their deadline, remembered until the lease would have expired anyway; past this many, the oldest are left to expiry.
const MAX_ABANDONED = 10_000;
// Serializes schema migrations, and syncs of the key lists, between instances starting at once.
const MIGRATE_LOCK = "hashtext('keypool.migrate')";
const SYNC_LOCK = "hashtext('keypool.sync')";
// With a hash of pool and session, serializes one session's takes (the two-key lock space, apart from the two above).
const SESSION_LOCK_CLASS = 0x6b70_7373; // "kpss"
const RETRIES = 3;
// Keys per INSERT when a sync adds many: ~12 values each, far below PostgreSQL's 65,535 parameters.
const INSERT_CHUNK = 1000;
const SYNC_TIMEOUT_SEC = 60;
const ANALYZE_AFTER_KEYS = 1000;
// A release planned from a row another take or release changed meanwhile is planned again this often, then locked.
const OPTIMISTIC_TRIES = 4;
// Rows of keys this instance handed out, kept for their releases; past this many, a release reads its key first.
const MAX_REMEMBERED_LEASES = 10_000;

/**
 * The shared store: every keypool instance pointed at one PostgreSQL database serves the same pools.
 * It decides nothing itself: it loads a key's row (and its pair for the request's model: see _pairs.ts),
 * asks src/pool's planner and writes the plan. A take is one statement that follows chooseKey, or
 * chooseKeyForModel (see _take.ts); a release by lease id is one statement that writes its plan only
 * over the row and pair it was planned from (see _release.ts); every other change locks the key's row
 * (`FOR UPDATE`) in a transaction. When the database cannot be reached, every method
 * fails within `timeoutSec` with STORE_UNAVAILABLE, and the next call after it returns simply works again.
 */
export class PostgresStore implements PoolStore {
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly failuresToDead: number;
  private readonly timeoutSec: number;
  private readonly pools = new Map<string, PoolSettings>();
  private readonly takeStatements = new Map<string, string>();
  private readonly takenRows = new Map<string, LeasedKey>();
  private readonly vault: SecretVault;
  private readonly sessions = new PostgresSessions();
  private readonly ledger = new PostgresUsageLedger();
  private readonly spend = new PostgresSpend();
  private nextReclaimAt = 0;
  /**
   * Takes this instance answered STORE_UNAVAILABLE to at their deadline, by lease id, with when the
   * lease would expire. A hung server may still run such a take when it wakes; the next reclaim gives
   * that lease back at once instead of after lease_ttl_sec.
   */
  private readonly abandoned = new Map<string, number>();
  /** A take was abandoned since the last reclaim: the next take reclaims at once, as the store may answer again. */
  private reclaimAbandoned = false;
  /** Takes and releases that change nothing other instances decide on, decided in memory (see _hot-path.ts). */
  private readonly hot: HotPath | undefined;

  private constructor(
    private readonly sql: SQL,
    options: PostgresStoreOptions,
    /** The database as logs and messages may name it: no password. */
    readonly where: string,
  ) {
    this.clock = options.clock;
    this.random = options.random ?? Math.random;
    this.failuresToDead = options.failuresToDead ?? 3;
    this.timeoutSec = options.timeoutSec ?? DEFAULT_TIMEOUT_SEC;
    this.vault = new SecretVault(options.cipher, `the PostgreSQL store ${this.where}`);
    this.hot =
      options.hotPath === false
        ? undefined
        : new HotPath(
            sql,
            this.clock,
            this.random,
            (op) => this.guard(op),
            (sealed) => this.vault.reveal(sealed),
          );
  }

  /**
   * Connects, brings the schema up to date (one instance at a time) and checks the encryption key.
   * @throws DomainError STORE_UNAVAILABLE when the database cannot be reached; ConfigError for a wrong key.
   */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const client = openClient(options);
    const store = new PostgresStore(options.wrapClient?.(client) ?? client, options, maskDatabaseUrl(options.url));
    try {
      // Other instances may hold the migration lock for a while: more time than one request gets.
      await withDeadline(() => store.migrate(), Math.max(30, store.timeoutSec));
    } catch (error) {
      await store.sql.close({ timeout: 0 });
      if (error instanceof DomainError && error.code === "STORE_UNAVAILABLE") {
        throw new DomainError(
          "STORE_UNAVAILABLE",
          `cannot open the PostgreSQL store ${store.where}: ${error.message} — check store.postgres.url (or KEYPOOL_DATABASE_URL) and that the server is up`,
        );
      }
      throw error;
    }
    return store;
  }

  /** Brings a database's schema up to date without opening a store on it (no key is checked): for copying into it. */
  static async prepareSchema(url: string, timeoutSec = DEFAULT_TIMEOUT_SEC): Promise<void> {
    const sql = openClient({ url, timeoutSec, maxConnections: 1 });
    try {
      await withDeadline(() => sql.begin((tx) => migrateSchema(tx)), Math.max(30, timeoutSec));
    } finally {
      await sql.close({ timeout: 0 });
    }
  }

  private async migrate(): Promise<void> {
    await this.sql.begin(async (tx) => {
      await migrateSchema(tx);
      // Values an older keypool (or a hand edit) stored out of range are put back in range: see stored-bounds.
      for (const statement of repairStatements("postgres", this.clock.now())) await tx.unsafe(statement);
      await verifyVault(tx, this.vault);
    });
  }

  poolNames(): string[] {
    return [...this.pools.keys()];
  }

  async syncPools(
    pools: Array<{ settings: PoolSettings; keys: KeyInput[] }>,
    options: SyncOptions = {},
  ): Promise<Record<string, SyncResult>> {
    await this.settled();
    let pruned: string[] = [];
    const results = await this.transaction(
      async (tx) => {
        await tx.unsafe(`SELECT pg_advisory_xact_lock(${SYNC_LOCK})`);
        const results: Record<string, SyncResult> = {};
        for (const { settings, keys } of pools) results[settings.name] = await this.syncOnePool(tx, settings, keys);
        if (options.prune !== false) {
          const wanted = pools.map((p) => p.settings.name);
          const gone =
            (await tx`SELECT DISTINCT pool FROM keypool_keys WHERE NOT (pool = ANY(${wanted}::text[]))`) as Array<{
              pool: string;
            }>;
          for (const { pool } of gone) {
            await tx`DELETE FROM keypool_leases WHERE pool = ${pool}`;
            await tx`DELETE FROM keypool_keys WHERE pool = ${pool}`;
            await tx`DELETE FROM keypool_usage_hourly WHERE pool = ${pool}`;
            await tx`DELETE FROM keypool_sessions WHERE pool = ${pool}`;
            await this.spend.forget(tx, pool);
          }
          // Set whole on each attempt: a retried transaction must not report a pool twice.
          pruned = gone.map(({ pool }) => pool);
        }
        return results;
        // Each statement still answers within timeout_sec; the whole sync of a large pool may take longer.
      },
      Math.max(SYNC_TIMEOUT_SEC, this.timeoutSec),
    );
    // The planner picks the take's index from the table's statistics: after a large pool arrives it
    // would sort the pool per take until autovacuum gets round to it (measured on 100,000 keys: 3.6 ms
    // a take+release before, 1.8 ms after).
    const churn = Object.values(results).reduce((n, r) => n + r.added.length + r.removed.length, 0);
    if (churn >= ANALYZE_AFTER_KEYS) await this.guard(() => this.sql`ANALYZE keypool_keys`);
    for (const pool of pruned) options.onPruned?.(pool);
    if (options.prune !== false) this.pools.clear();
    for (const { settings } of pools) this.pools.set(settings.name, settings);
    this.hot?.reset();
    return results;
  }

  private async syncOnePool(tx: Db, settings: PoolSettings, keys: KeyInput[]): Promise<SyncResult> {
    const pool = settings.name;
    const existing = new Map<string, KeyRow>();
    for (const row of (await tx`SELECT * FROM keypool_keys WHERE pool = ${pool} FOR UPDATE`) as KeyRow[])
      existing.set(row.id, row);
    const result: SyncResult = { added: [], updated: [], removed: [], kept: 0 };
    const maxConcurrency = settings.maxConcurrency ?? null;
    // Read once: each new key's rank follows from the ones before it (round_robin appends them in order).
    const ctx = await this.rankContext(tx, pool, settings);
    const added: Fields[] = [];
    const replaced: string[] = [];
    for (const key of keys) {
      const before = existing.get(key.id);
      existing.delete(key.id);
      const refreshToken = key.refreshToken ?? null;
      const origin = key.origin ?? "file";
      if (!before) {
        const rank = initialRank(settings.rotation, ctx);
        ctx.maxRank = Math.max(ctx.maxRank, rank);
        added.push(
          this.newKeyRow(pool, key.id, key.token, key.weight, rank, maxConcurrency, refreshToken, {
            key_group: key.group ?? null,
            origin,
            models: modelsColumnOf(key.models),
            ...budgetFields(key),
          }),
        );
        result.added.push(key.id);
        continue;
      }
      const fields: Fields = {
        weight: key.weight,
        key_group: key.group ?? null,
        models: modelsColumnOf(key.models),
        ...budgetFields(key),
      };
      // A key the config takes over from the admin API loses the limits the API gave it.
      if (before.origin !== origin)
        Object.assign(fields, {
          origin,
          limit_max_concurrency: null,
          limit_rpm: null,
          limit_tpm: null,
          limit_daily_requests: null,
        });
      const ownCap = before.origin === origin ? before.limit_max_concurrency : null;
      fields.max_concurrency = ownCap ?? maxConcurrency;
      if (this.vault.reveal(before.source_token) !== key.token) {
        // A new token under an old id is a different credential: what we knew no longer applies.
        const sealed = this.vault.seal(key.token);
        const sealedRefresh = this.vault.seal(refreshToken);
        Object.assign(fields, FORGET_TOKEN, {
          token: sealed,
          source_token: sealed,
          refresh_token: sealedRefresh,
          source_refresh_token: sealedRefresh,
        });
        replaced.push(key.id);
        result.updated.push(key.id);
      } else if (this.vault.reveal(before.source_refresh_token) !== refreshToken) {
        const sealedRefresh = this.vault.seal(refreshToken);
        Object.assign(fields, { refresh_token: sealedRefresh, source_refresh_token: sealedRefresh });
        result.updated.push(key.id);
      } else if (before.weight !== key.weight) result.updated.push(key.id);
      else result.kept++;
      // A restart syncs every key: only the ones the config changed cost a statement.
      await this.write(tx, pool, key.id, changedFields(before, fields));
    }
    const removed: string[] = [];
    for (const [id, row] of existing) {
      // The admin API's keys are not the config's to remove.
      if (row.origin === "api") {
        await this.write(
          tx,
          pool,
          id,
          changedFields(row, { max_concurrency: row.limit_max_concurrency ?? maxConcurrency }),
        );
        result.kept++;
        continue;
      }
      removed.push(id);
    }
    // Nor does what the old token's models said: a new credential may serve a model the old one could not.
    if (replaced.length > 0)
      await tx`DELETE FROM keypool_key_models WHERE pool = ${pool} AND key_id = ANY(${replaced}::text[])`;
    if (removed.length > 0) {
      await tx`DELETE FROM keypool_leases WHERE pool = ${pool} AND key_id = ANY(${removed}::text[])`;
      await tx`DELETE FROM keypool_keys WHERE pool = ${pool} AND id = ANY(${removed}::text[])`;
      await this.spend.forget(tx, pool, removed);
      result.removed.push(...removed);
    }
    // Many rows per statement: a pool of 100,000 keys is added in about a hundred round trips, not 100,000.
    for (let i = 0; i < added.length; i += INSERT_CHUNK)
      await tx`INSERT INTO keypool_keys ${tx(added.slice(i, i + INSERT_CHUNK))}`;
    // Capped keys and pools count what they spent before the cap, or before this store kept their counters.
    const capped = keys.filter((key) => hasCaps(key.budget)).map((key) => key.id);
    if (hasCaps(settings.budget)) capped.push(POOL_TOTAL);
    await this.spend.catchUp(tx, pool, capped, this.clock.now());
    return result;
  }

  /** A new key's row, its secrets sealed. */
  private newKeyRow(
    pool: string,
    id: string,
    token: string,
    weight: number,
    rank: number,
    maxConcurrency: number | null,
    refreshToken: string | null,
    extra: Fields,
  ): Fields {
    const sealed = this.vault.seal(token);
    const sealedRefresh = this.vault.seal(refreshToken);
    return {
      pool,
      id,
      token: sealed,
      source_token: sealed,
      weight,
      rank,
      max_concurrency: maxConcurrency,
      refresh_token: sealedRefresh,
      source_refresh_token: sealedRefresh,
      ...extra,
    };
  }

  // ---- take ----------------------------------------------------------------------------------

  async take(pool: string, options: TakeOptions = {}): Promise<Lease> {
    const settings = this.settingsOf(pool);
    const exclude = [...(options.exclude ?? [])];
    // Sessions and models keep their SQL: only the plain take is decided in memory.
    if (this.hot?.serves(settings) && options.session === undefined && options.model === undefined) {
      const now = this.clock.now();
      if (now >= this.nextReclaimAt || this.reclaimAbandoned)
        await this.guard(() => this.reclaimExpiredLeases(this.sql, now));
      // Its look at the key log runs with the deadline: one per batch of takes (see _hot-path.ts).
      const lease = await this.hot.take(settings, exclude);
      if (lease) return lease;
    }
    // The database decides this take: what only memory knows (ranks, leases) is written first.
    await this.settled();
    // One id for every pick of this take: at most one of them inserts a lease.
    const leaseId = newLeaseId();
    let outcome: Lease | { retryAfterMs: number } | { spent: BudgetRest };
    try {
      outcome = await this.guard(() => this.takeNow(settings, exclude, leaseId, options.session, options.model));
    } catch (error) {
      if (error instanceof DomainError && error.code === "STORE_UNAVAILABLE")
        this.abandon(leaseId, this.clock.now() + settings.leaseTtlSec * 1000);
      throw error;
    }
    if ("lease" in outcome) return outcome;
    if ("spent" in outcome) throw budgetExhausted(pool, outcome.spent, this.clock.now());
    const what = options.model === undefined ? "" : ` for model "${options.model}"`;
    throw new DomainError(
      "NO_KEY_AVAILABLE",
      `no key in pool "${pool}" is available${what} right now; retry in ${Math.ceil(outcome.retryAfterMs / 1000)}s`,
      outcome.retryAfterMs,
    );
  }

  private async takeNow(
    settings: PoolSettings,
    exclude: string[],
    leaseId: string,
    session?: string,
    model?: string,
  ): Promise<Lease | { retryAfterMs: number } | { spent: BudgetRest }> {
    const now = this.clock.now();
    // A pool that spent its budget hands nothing out until the window resets (its fallbacks take over):
    // one more round trip, for capped pools only. Releases add to the total under its lock (see _spend.ts).
    if (hasCaps(settings.budget)) {
      const spent = budgetRest(await this.spend.of(this.sql, settings.name, POOL_TOTAL), settings.budget, now);
      if (spent) return { spent };
    }
    const take: TakeRequest = { settings, now, exclude, leaseId, model };
    if (now >= this.nextReclaimAt || this.reclaimAbandoned) await this.reclaimExpiredLeases(this.sql, now);
    if (session === undefined) return this.takeIn(this.sql, take, []);
    // A session's takes run one at a time, each in one transaction, on whichever instance: two first
    // takes of a new session cannot map it to two keys, and a take never reads a mapping half-changed.
    return this.transaction(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(${SESSION_LOCK_CLASS}::int, hashtext(${`${settings.name}\n${session}`}))`;
      // It tries its own key (then the one it is detouring on) before the rotation does.
      const sticky = await this.sessions.lookup(tx, settings.name, session, now);
      const taken = await this.takeIn(tx, take, sticky.candidates);
      if ("lease" in taken)
        await this.sessions.record(tx, sticky, taken.id, now, {
          ttlSec: settings.sessionTtlSec,
          max: settings.maxSessions,
        });
      return taken;
    });
  }

  private async takeIn(db: Db, take: TakeRequest, candidates: string[]): Promise<Lease | { retryAfterMs: number }> {
    const preferred = candidates.filter((id) => !take.exclude.includes(id));
    const pick = (how: { preferred?: string[]; wait?: boolean }) => this.pick(db, take, how);
    let lease = preferred.length > 0 ? await pick({ preferred }) : null;
    lease ??= await pick({});
    // Every ready key may have been locked by takes and releases in flight: wait for them once.
    lease ??= await pick({ wait: true });
    if (lease) return lease;
    const soonest = await this.soonestFree(db, take);
    if (!soonest.expired) return { retryAfterMs: soonest.retryAfterMs };
    await this.reclaimExpiredLeases(db, take.now);
    return (await pick({ wait: true })) ?? { retryAfterMs: (await this.soonestFree(db, take)).retryAfterMs };
  }

  /** chooseKey's walk: from the session's keys, or from pickStart (see pickSql). */
  private async pick(
    db: Db,
    request: TakeRequest,
    how: { preferred?: string[]; wait?: boolean },
  ): Promise<Lease | null> {
    const wait = how.wait === true;
    const take = new TakeAttempt(request, this.random);
    const from = how.preferred ?? pickStart(take.settings.rotation, this.random);
    const variant = { preferred: how.preferred !== undefined, wait, model: take.model !== undefined };
    const taken = await this.takeFrom(db, take, variant, from);
    if (!taken) return null;
    this.rememberLease(take.leaseId, taken);
    const token = this.vault.reveal(taken.row.token);
    return {
      lease: take.leaseId,
      pool: take.settings.name,
      id: taken.row.id,
      token,
      takenAt: take.now,
      expiresAt: take.expiresAt,
    };
  }

  /**
   * One take statement. A key the statement picked but may not take alone (it has request limits)
   * is taken again the planned way: locked in a transaction, planTake, written. A take for a model
   * the pool's model_limits give an rpm is counted on the pair (planModelTake) in the same transaction.
   */
  private async takeFrom(
    db: Db,
    take: TakeAttempt,
    variant: Omit<TakeVariant, "rotation">,
    from: number | string[],
  ): Promise<LeasedKey | null> {
    const { settings } = take;
    const statement = this.takeStatement({ ...variant, rotation: settings.rotation });
    const keyLimits = hasRequestLimits({ rpm: settings.rpm, dailyRequests: settings.dailyRequests });
    // The statement takes alone unless the take is counted: on the key (planTake), or on the pair (countModelTake).
    const countsPair = take.modelLimit?.rpm !== undefined;
    if (!keyLimits && !countsPair) {
      const [row] = (await db.unsafe(statement, take.params(from))) as TakenRow[];
      if (!row) return null;
      if (row.taken) return leasedKeyOf(row, take.model);
    }
    const planned = (tx: Db) => this.plannedTake(tx, take, variant, from);
    if (take.model === undefined) return this.inTransaction(db, planned);
    // A take for a model is undone when the pair, read under the key's lock, turns out to rest (see
    // countModelTake); the pick is made again, and its new snapshot sees that rest.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.inTransaction(
          db,
          async (tx) => {
            if (keyLimits || !countsPair) return planned(tx);
            const [row] = (await tx.unsafe(statement, take.params(from))) as TakenRow[];
            if (!row) return null;
            return row.taken ? this.countModelTake(tx, take, leasedKeyOf(row, take.model, true)) : planned(tx);
          },
          { undoable: true },
        );
      } catch (error) {
        if (!(error instanceof PairResting)) throw error;
        if (attempt >= OPTIMISTIC_TRIES) return null;
      }
    }
  }

  /** A take the planner decides: the locked pick, planTake, its writes and the lease. */
  private async plannedTake(
    tx: Db,
    take: TakeAttempt,
    variant: Omit<TakeVariant, "rotation">,
    from: number | string[],
  ): Promise<LeasedKey | null> {
    const { settings, now } = take;
    const pool = settings.name;
    const params = [pool, now, from, take.exclude, ...(take.model === undefined ? [] : [take.model])];
    const [row] = (await tx.unsafe(pickSql(variant, "$5"), params)) as VersionedRow[];
    if (!row) return null;
    const plan = planTake(factsOf(row, settings), settings, await this.rankContext(tx, pool, settings));
    const fields: Fields = {
      ...conditionFields({ condition: plan.condition, takeable: row.takeable, rank: plan.rank }),
      in_flight: plan.inFlight,
      last_used: now,
      requests: row.requests + 1,
    };
    if (plan.windows)
      Object.assign(fields, {
        minute_start: plan.windows.minuteStart,
        minute_requests: plan.windows.minuteRequests,
        minute_tokens: plan.windows.minuteTokens,
        day_start: plan.windows.dayStart,
        day_requests: plan.windows.dayRequests,
      });
    const after = await this.write(tx, pool, row.id, fields);
    await tx`INSERT INTO keypool_leases (lease, pool, key_id, taken_at, expires_at, model)
             VALUES (${take.leaseId}, ${pool}, ${row.id}, ${now}, ${take.expiresAt}, ${take.model ?? null})`;
    if (plan.event) await this.logEvents(tx, [eventOf(pool, row.id, plan.event, now)]);
    if (!after) return null;
    return take.model === undefined
      ? { row: after, model: null }
      : this.countModelTake(tx, take, { row: after, model: take.model });
  }

  /**
   * The take's request counted against the model's rpm on the taken key (planModelTake), inside the
   * transaction that took the key: its row is locked, so the pair — as the take statement saw it when
   * it could tell (`pair_seen`), else read now — is current and stays so until the commit. A pair
   * that rests after all (its rest committed between the pick's snapshot and its lock) undoes the take.
   * @throws PairResting
   */
  private async countModelTake(tx: Db, take: TakeAttempt, taken: LeasedKey): Promise<LeasedKey> {
    const model = take.model!;
    const { row } = taken;
    const seen = taken.pair ?? (await readPair(tx, row.pool, row.id, model));
    const before = seen.columns;
    if (before !== null && before.ready_at > take.now) throw new PairResting();
    const plan = planModelTake(before ? modelStateOf(before) : undefined, model, take.modelLimit, take.now);
    if (!plan) return { row, model, pair: seen };
    const columns = pairColumnsOf(model, plan.state, take.now);
    let version = seen.version;
    if (changesPair(before, columns)) {
      // The take's own write of the key row, in this transaction, is the pair's change of its key (see _pairs.ts).
      const [written] = (await this.writePair(tx, row.pool, row.id, { model, columns })) as Array<{ version: string }>;
      version = written?.version ?? null;
    }
    if (plan.event) await this.logEvents(tx, [pairEventOf(row.pool, row.id, plan.event, take.now)]);
    return { row, model, pair: { model, columns, version } };
  }

  private takeStatement(variant: TakeVariant): string {
    const key = `${variant.rotation}:${variant.preferred}:${variant.wait}:${variant.model}`;
    let text = this.takeStatements.get(key);
    if (text === undefined) this.takeStatements.set(key, (text = takeSql(variant)));
    return text;
  }

  /** The key's row (and pair) as the take left it, kept for its release to plan from (see releaseLease). */
  private rememberLease(leaseId: string, taken: LeasedKey): void {
    if (this.takenRows.size >= MAX_REMEMBERED_LEASES) this.takenRows.delete(this.takenRows.keys().next().value!);
    // The token is not needed to plan a release, and stays out of a cache that outlives the take.
    this.takenRows.set(leaseId, {
      ...taken,
      row: { ...taken.row, token: "", source_token: null, refresh_token: null, source_refresh_token: null },
    });
  }

  /**
   * Leases never released within their TTL give their slot back, whichever instance took them; the
   * key's state is untouched.
   */
  private async reclaimExpiredLeases(db: Db, now: number): Promise<void> {
    this.nextReclaimAt = now + RECLAIM_EVERY_MS;
    for (const [lease, expiresAt] of this.abandoned) if (expiresAt <= now) this.abandoned.delete(lease);
    const abandoned = [...this.abandoned.keys()];
    this.reclaimAbandoned = false;
    const freed = (await db`
      WITH gone AS (
        DELETE FROM keypool_leases WHERE lease IN (
          SELECT lease FROM keypool_leases WHERE expires_at <= ${now} OR lease = ANY(${abandoned}::text[])
          FOR UPDATE SKIP LOCKED)
        RETURNING pool, key_id
      ), counts AS (SELECT pool, key_id, count(*)::int AS n FROM gone GROUP BY pool, key_id)
      UPDATE keypool_keys k SET in_flight = GREATEST(0, k.in_flight - c.n)
      FROM counts c WHERE k.pool = c.pool AND k.id = c.key_id
      RETURNING k.pool, k.id, k.rank, k.weight, k.in_flight, k.last_used, k.xmin::text AS row_version`) as Array<
      Pick<VersionedRow, "pool" | "id" | "rank" | "weight" | "in_flight" | "last_used" | "row_version">
    >;
    const moved = freed.flatMap((row) => {
      const rotation = this.pools.get(row.pool)?.rotation;
      const key = { rank: row.rank, weight: row.weight, inFlight: row.in_flight, lastUsed: row.last_used };
      const rank = rotation === undefined ? row.rank : rankAfterReclaim(rotation, key);
      return rank === row.rank ? [] : [{ ...row, rank }];
    });
    if (moved.length === 0) return;
    // Only where nothing changed the key since: a take or release meanwhile has ranked it already.
    await db`
      UPDATE keypool_keys k SET rank = m.rank
      FROM (SELECT unnest(${moved.map((m) => m.pool)}::text[]) AS pool, unnest(${moved.map((m) => m.id)}::text[]) AS id,
                   unnest(${moved.map((m) => m.rank)}::float8[]) AS rank,
                   unnest(${moved.map((m) => m.row_version)}::text[]) AS version) m
      WHERE k.pool = m.pool AND k.id = m.id AND k.xmin::text = m.version`;
  }

  /** Remembers a take given up on at its deadline (see `abandoned`). */
  private abandon(leaseId: string, expiresAt: number): void {
    if (this.abandoned.size >= MAX_ABANDONED) this.abandoned.delete(this.abandoned.keys().next().value!);
    this.abandoned.set(leaseId, expiresAt);
    this.reclaimAbandoned = true;
  }

  /**
   * When a take that found nothing could next succeed. For a model, the soonest end of a rest that
   * keeps a key in rotation from the model, whether the key's or the pair's (modelReadyAtOfPool);
   * otherwise, or when a key may serve the model now but is busy, the soonest rest or lease expiry.
   */
  private async soonestFree(db: Db, take: TakeRequest): Promise<{ retryAfterMs: number; expired: boolean }> {
    const { settings, now, model } = take;
    const pool = settings.name;
    const [row] = (await db`
      SELECT (SELECT min(ready_at) FROM keypool_keys WHERE pool = ${pool} AND takeable AND ready_at > ${now}) AS ready,
             (SELECT min(expires_at) FROM keypool_leases WHERE pool = ${pool} AND expires_at > ${now}) AS lease,
             EXISTS (SELECT 1 FROM keypool_leases WHERE expires_at <= ${now}) AS expired,
             (SELECT min(CASE WHEN k.models IS NULL OR ${model ?? null}::text = ANY(string_to_array(k.models, '|'))
                              THEN GREATEST(k.ready_at, COALESCE(m.ready_at, 0)) END)
                FROM keypool_keys k LEFT JOIN keypool_key_models m
                  ON m.pool = k.pool AND m.key_id = k.id AND m.model = ${model ?? null}::text
                WHERE ${model !== undefined} AND k.pool = ${pool} AND k.takeable) AS model_ready`) as [
      { ready: number | null; lease: number | null; expired: boolean; model_ready: number | null },
    ];
    if (row.model_ready !== null && row.model_ready > now)
      return { retryAfterMs: Math.max(1000, row.model_ready - now), expired: row.expired };
    const candidates = [row.ready, row.lease].filter((t): t is number => typeof t === "number" && t > now);
    const retryAfterMs =
      candidates.length === 0 ? settings.recheckIntervalSec * 1000 : Math.max(1000, Math.min(...candidates) - now);
    return { retryAfterMs, expired: row.expired };
  }

  // ---- release -------------------------------------------------------------------------------

  async release(target: ReleaseTarget, outcome: Outcome): Promise<ReleaseResult> {
    if (!("lease" in target)) {
      await this.settled();
      return this.transaction((tx) => this.releaseLocked(tx, target, outcome));
    }
    const hot = this.hot;
    if (hot?.holds(target.lease)) {
      const settled = hot.release(target.lease, outcome, (pool) => this.settingsOf(pool));
      if (settled) return settled;
      // Decided in SQL: the lease is written there first.
      await this.settled();
      try {
        return await this.guard(() => this.releaseLease(target.lease, outcome));
      } finally {
        hot.forgetLease(target.lease);
      }
    }
    const taken = this.takenRows.get(target.lease);
    this.takenRows.delete(target.lease);
    return this.guard(() => this.releaseLease(target.lease, outcome, taken));
  }

  /**
   * A release by lease id, planned from the key's row as this instance last saw it (as the take left
   * it, usually) and written in one statement if the row is still that version. When another take or
   * release changed the row meanwhile, the statement answers with the row as it is now and the
   * release is planned again from that. The release's model is the outcome's, or else the one the take
   * named; its pair must have been read with the row (a take for that model did), or the row and the
   * pair are read again together.
   */
  private async releaseLease(lease: string, outcome: Outcome, seen?: LeasedKey): Promise<ReleaseResult> {
    let leased = seen ?? (await this.leasedKey(lease, outcome.model));
    for (let attempt = 0; attempt < OPTIMISTIC_TRIES; attempt++) {
      const model = outcome.model ?? leased.model ?? undefined;
      if (model !== undefined && leased.pair?.model !== model) leased = await this.leasedKey(lease, outcome.model);
      const { row } = leased;
      const settings = this.settingsOf(row.pool);
      const now = this.clock.now();
      const seenPair = model === undefined ? undefined : leased.pair;
      const before = seenPair?.columns ?? null;
      const plan = await this.decide(this.sql, settings, now, (ctx) =>
        planModelRelease(modelAwareFacts(row, settings, before), model, withModel(outcome, model), settings, ctx, 1),
      );
      // Resting a group locks its other keys, and a cost under a cap adds to counters other instances
      // add to too: both need a transaction.
      if (plan.groupRest || countsSpend(plan, row, settings)) break;
      const entry = { ok: outcome.ok, failure: plan.failureClass, tokens: outcome.usage, costMicros: plan.costMicros };
      const { pair, events } = pairWriteOf(row, plan, before, now);
      const release = { lease, row, plan, outcome, entry, now, seenPair, pair, events };
      const { text, values } = guardedReleaseSql(release, this.ledger, this.sessions);
      const [answer] = (await this.sql.unsafe(text, values)) as GuardedAnswer[];
      if (answer?.given) {
        await this.ledger.foldIfDue(this.sql, now);
        return releaseResultOf(row, plan, model, now);
      }
      if (!answer?.leased) throw unknownLease(lease);
      const { given: _, leased: __, pair: pairNow, ...current } = answer;
      leased = {
        row: current,
        model: leased.model,
        pair: model === undefined ? undefined : seenPairOf(model, pairNow ?? null),
      };
    }
    return this.transaction((tx) => this.releaseLocked(tx, { lease }, outcome));
  }

  /**
   * The key a lease is on as it is now, with the lease's model and the key's pair for the release's
   * model (`model`, or else the lease's), read in one snapshot: the pair goes with that row version.
   */
  private async leasedKey(lease: string, model: string | undefined): Promise<LeasedKey> {
    const [found] = (await this.sql.unsafe(
      `SELECT k.*, k.xmin::text AS row_version, l.model AS lease_model,
         ${pairJsonSql("k.pool", "k.id", "COALESCE($2::text, l.model)")} AS pair
       FROM keypool_leases l JOIN keypool_keys k ON k.pool = l.pool AND k.id = l.key_id
       WHERE l.lease = $1`,
      [lease, model ?? null],
    )) as Array<VersionedRow & { lease_model: string | null; pair: PairJson | null }>;
    if (!found) throw unknownLease(lease);
    const { lease_model, pair, ...row } = found;
    const pairModel = model ?? lease_model;
    return { row, model: lease_model, pair: pairModel === null ? undefined : seenPairOf(pairModel, pair) };
  }

  /** A release inside a transaction: the lease given back and the key locked, then planned and written. */
  private async releaseLocked(tx: Db, target: ReleaseTarget, outcome: Outcome): Promise<ReleaseResult> {
    const now = this.clock.now();
    let pool: string;
    let id: string;
    let leasesGiven = 0;
    let leaseModel: string | null = null;
    let row: KeyRow | undefined;
    if ("lease" in target) {
      // One round trip gives the lease back and locks its key (a lease always has its key: removing a key removes its leases).
      const [found] = (await tx`
        WITH given AS (DELETE FROM keypool_leases WHERE lease = ${target.lease} RETURNING pool, key_id, model)
        SELECT g.pool AS lease_pool, g.key_id AS lease_key, g.model AS lease_model, k.*
        FROM given g JOIN keypool_keys k ON k.pool = g.pool AND k.id = g.key_id
        FOR UPDATE OF k`) as Array<KeyRow & { lease_pool: string; lease_key: string; lease_model: string | null }>;
      if (!found) throw unknownLease(target.lease);
      pool = found.lease_pool;
      id = found.lease_key;
      leaseModel = found.lease_model;
      leasesGiven = 1;
      row = found;
    } else {
      pool = await this.findPoolOfKey(tx, target.id, target.pool);
      id = target.id;
      // Without a lease id, the oldest lease on the key is the one being given back.
      const given = (await tx`DELETE FROM keypool_leases WHERE lease = (
                               SELECT lease FROM keypool_leases WHERE pool = ${pool} AND key_id = ${id} ORDER BY taken_at LIMIT 1 FOR UPDATE SKIP LOCKED)
                             RETURNING lease, model`) as Array<{ lease: string; model: string | null }>;
      leasesGiven = given.length;
      leaseModel = given[0]?.model ?? null;
      row = await this.lockKey(tx, pool, id);
    }
    if (!row) throw new DomainError("UNKNOWN_KEY", `key "${id}" is no longer in pool "${pool}"`);
    const model = outcome.model ?? leaseModel ?? undefined;
    const settings = this.settingsOf(pool);
    // The key's spend is written only under its row's lock, which this transaction holds: it is current.
    const capped = hasCaps(settings.budget) || hasCaps(budgetOf(row));
    const [before, spent] = await Promise.all([
      model === undefined ? null : readPair(tx, pool, id, model).then((pair) => pair.columns),
      capped ? this.spend.of(tx, pool, id) : undefined,
    ]);
    const facts = { ...modelAwareFacts(row, settings, before), ...(spent && { spend: spent }) };
    const plan = await this.decide(tx, settings, now, (ctx) =>
      planModelRelease(facts, model, withModel(outcome, model), settings, ctx, leasesGiven),
    );
    const entry = { ok: outcome.ok, failure: plan.failureClass, tokens: outcome.usage, costMicros: plan.costMicros };
    const params = new Params();
    const usage = this.ledger.upsert("(SELECT 1) one", params, pool, id, entry, now);
    const { pair, events } = pairWriteOf(row, plan, before, now);
    const counted = countsSpend(plan, row, settings);
    await Promise.all([
      this.write(tx, pool, id, releaseFields(row, plan, now)),
      tx.unsafe(usage, params.values),
      outcome.session !== undefined && this.addSessionUsage(tx, pool, outcome.session, outcome),
      pair && this.writePair(tx, pool, id, pair),
      counted && this.spend.write(tx, pool, id, plan.spend!),
    ]);
    if (plan.groupRest) await this.restGroup(tx, row, plan.groupRest, now, events);
    const total = counted ? await this.spendAlerts(tx, settings, id, plan, now, events) : undefined;
    await Promise.all([total && this.spend.write(tx, pool, POOL_TOTAL, total), this.logEvents(tx, events)]);
    await this.ledger.foldIfDue(tx, now);
    return releaseResultOf(row, plan, model, now);
  }

  /**
   * A counted release's alerts, and — when its pool has a cap — the pool's total with its cost added,
   * for the release to write. The total is locked last, after every key the release locks, so two
   * releases never wait on each other in opposite orders; it stays locked until the commit, so each
   * threshold is crossed by one release, whichever instance it runs on.
   */
  private async spendAlerts(
    tx: Db,
    settings: PoolSettings,
    id: string,
    plan: ModelReleasePlan,
    now: number,
    events: KeyEvent[],
  ): Promise<SpendWindows | undefined> {
    const pool = settings.name;
    // The events name the state of the key whose release crossed the line (the pool's own have key "").
    const state = stateOf(plan.condition, now);
    events.push(...crossingEvents(pool, id, state, plan.budgetCrossings ?? [], now));
    if (!hasCaps(settings.budget)) return undefined;
    const before = await this.spend.lockTotal(tx, pool);
    const total = planSpend(before, plan.costMicros, plan.unpriced, settings.budget, now);
    events.push(...crossingEvents(pool, POOL_TOTAL, state, total.crossings, now));
    return total.spend;
  }

  private addSessionUsage(tx: Db, pool: string, session: string, outcome: Outcome): Promise<unknown> {
    const params = new Params();
    return tx.unsafe(this.sessions.addUsage("(SELECT 1) one", params, pool, session, outcome.usage), params.values);
  }

  /** Writes a pair in a transaction that holds its key locked and writes the key's row too (see _pairs.ts). */
  private writePair(tx: Db, pool: string, id: string, pair: PairWrite): Promise<unknown> {
    const params = new Params();
    return tx.unsafe(pairWriteSql(params, pool, id, pair, null), params.values);
  }

  /**
   * Keys of one group share an account's limits: a rate limit or spent quota on one rests them all,
   * until the same time (planGroupRest) — or, when the rest is a pair's, rests the same model on them all
   * (planModelGroupRest).
   */
  private async restGroup(tx: Db, row: KeyRow, rest: GroupRest, now: number, events: KeyEvent[]): Promise<void> {
    // Locked in id order, so two releases resting one group wait for each other instead of deadlocking.
    const members =
      (await tx`SELECT * FROM keypool_keys WHERE pool = ${row.pool} AND key_group = ${rest.group} AND id <> ${row.id}
                ORDER BY id FOR UPDATE`) as KeyRow[];
    if (rest.model !== undefined) return this.restGroupPair(tx, row.pool, members, rest, rest.model, now, events);
    for (const member of members) {
      const planned = planGroupRest({ condition: conditionOf(member) }, rest, now);
      if (!planned) continue;
      const { health, reason, readyAt } = planned.condition;
      await this.write(tx, row.pool, member.id, { health, reason, ready_at: readyAt });
      events.push(eventOf(row.pool, member.id, planned.event, now));
    }
  }

  /** The members' pairs of `model` rest with the pair that failed; the keys themselves are left as they are. */
  private async restGroupPair(
    tx: Db,
    pool: string,
    members: KeyRow[],
    rest: GroupRest,
    model: string,
    now: number,
    events: KeyEvent[],
  ): Promise<void> {
    if (members.length === 0) return;
    const ids = members.map((m) => m.id);
    const pairs = new Map(
      (
        (await tx`SELECT * FROM keypool_key_models
                  WHERE pool = ${pool} AND key_id = ANY(${ids}::text[]) AND model = ${model}`) as PairRow[]
      ).map((pair) => [pair.key_id, pair]),
    );
    const rested: string[] = [];
    for (const id of ids) {
      const before = pairs.get(id) ?? null;
      const plan = planModelGroupRest(before ? modelStateOf(before) : undefined, rest, now);
      if (!plan) continue;
      const columns = pairColumnsOf(model, plan.state, now);
      if (changesPair(before, columns)) {
        await this.writePair(tx, pool, id, { model, columns });
        rested.push(id);
      }
      if (plan.event) events.push(pairEventOf(pool, id, plan.event, now));
    }
    // Every write of a pair changes its key's row (see _pairs.ts): a release planned from the row before
    // this rest must not write over the pair.
    if (rested.length > 0)
      await tx`UPDATE keypool_keys SET in_flight = in_flight WHERE pool = ${pool} AND id = ANY(${rested}::text[])`;
  }

  private async findPoolOfKey(tx: Db, id: string, pool?: string): Promise<string> {
    if (pool !== undefined) {
      this.settingsOf(pool);
      const found = await tx`SELECT 1 FROM keypool_keys WHERE pool = ${pool} AND id = ${id}`;
      if (found.length === 0) throw new DomainError("UNKNOWN_KEY", `pool "${pool}" has no key "${id}"`);
      return pool;
    }
    const owners = (
      (await tx`SELECT pool FROM keypool_keys WHERE id = ${id} AND pool = ANY(${this.poolNames()}::text[]) ORDER BY pool`) as Array<{
        pool: string;
      }>
    ).map((r) => r.pool);
    if (owners.length === 0) throw new DomainError("UNKNOWN_KEY", `no pool has a key "${id}"`);
    if (owners.length > 1)
      throw new DomainError("AMBIGUOUS_KEY", `key "${id}" exists in pools ${owners.join(", ")}; say which with "pool"`);
    return owners[0]!;
  }

  // ---- checks and refresh --------------------------------------------------------------------

  async recordCheck(pool: string, id: string, result: CheckRecord): Promise<void> {
    await this.transaction(async (tx) => {
      const now = this.clock.now();
      const settings = this.settingsOf(pool);
      const row = await this.lockKey(tx, pool, id);
      if (!row) throw new DomainError("UNKNOWN_KEY", `pool "${pool}" has no key "${id}"`);
      if (result.token !== undefined && result.token !== this.vault.reveal(row.token)) return;
      const facts = factsOf(row, settings);
      const plan = await this.decide(tx, settings, now, (ctx) =>
        planCheck(facts, result, settings, ctx, this.failuresToDead),
      );
      const events = plan.event ? [eventOf(pool, id, plan.event, now)] : [];
      // A probe that named its model speaks for that pair too (the key's row is written below: see _pairs.ts).
      if (result.model !== undefined) await this.checkPair(tx, settings, pool, id, result, result.model, now, events);
      const fields: Fields = {
        ...conditionFields(plan),
        last_check: now,
        last_check_ok: result.ok,
        last_check_status: result.status ?? null,
        last_check_latency_ms: Math.round(result.latencyMs),
        last_check_reason: result.reason,
        consecutive_failures: plan.consecutiveFailures,
        next_check_at: plan.nextCheckAt,
      };
      if (plan.ladder)
        Object.assign(fields, {
          fail_class: plan.ladder.failClass,
          rung: plan.ladder.rung,
          fail_until: plan.ladder.failUntil,
        });
      await this.write(tx, pool, id, fields);
      await this.logEvents(tx, events);
    });
  }

  /** planModelCheck on the key's pair for the probed model: a success gives a denied pair its access back. */
  private async checkPair(
    tx: Db,
    settings: PoolSettings,
    pool: string,
    id: string,
    result: CheckRecord,
    model: string,
    now: number,
    events: KeyEvent[],
  ): Promise<void> {
    const before = (await readPair(tx, pool, id, model)).columns;
    const check = { ok: result.ok, status: result.status };
    const plan = planModelCheck(before ? modelStateOf(before) : undefined, model, check, settings, now);
    if (!plan) return;
    const columns = pairColumnsOf(model, plan.state, now);
    if (changesPair(before, columns)) await this.writePair(tx, pool, id, { model, columns });
    if (plan.event) events.push(pairEventOf(pool, id, plan.event, now));
  }

  async claimDueChecks(pool: string, limit: number, holdMs: number): Promise<DueCheck[]> {
    this.settingsOf(pool);
    if (limit <= 0) return [];
    const now = this.clock.now();
    // SKIP LOCKED: checkers on other instances claim other keys instead of waiting for these.
    const rows = (await this.guard(
      () => this.sql`UPDATE keypool_keys SET next_check_at = ${now + holdMs}
                     WHERE pool = ${pool} AND id IN (
                       SELECT id FROM keypool_keys WHERE pool = ${pool} AND next_check_at <= ${now} AND health <> 'disabled'
                       ORDER BY next_check_at LIMIT ${limit} FOR UPDATE SKIP LOCKED)
                     RETURNING id, token, expires_at, next_check_at`,
    )) as Array<Pick<KeyRow, "id" | "token" | "expires_at">>;
    return rows.map((row) => ({ pool, id: row.id, token: this.vault.reveal(row.token), expiresAt: row.expires_at }));
  }

  async beginRefresh(
    pool: string,
    id: string,
    claim: { owner: string; staleToken: string; lockUntil: number },
  ): Promise<RefreshClaim> {
    return this.guard(async () => {
      const now = this.clock.now();
      const [row] = (await this.sql`SELECT token FROM keypool_keys WHERE pool = ${pool} AND id = ${id}`) as Array<
        Pick<KeyRow, "token">
      >;
      if (!row) return { status: "missing" };
      const current = this.vault.reveal(row.token);
      if (current !== claim.staleToken) return { status: "superseded", token: current };
      // One conditional write is the whole lock: it succeeds for exactly one caller, on any instance, while the lock is free.
      const [won] = (await this
        .sql`UPDATE keypool_keys SET refresh_owner = ${claim.owner}, refresh_lock_until = ${claim.lockUntil}
                                    WHERE pool = ${pool} AND id = ${id} AND token = ${row.token}
                                      AND (refresh_owner IS NULL OR refresh_lock_until <= ${now})
                                    RETURNING token, refresh_token`) as Array<Pick<KeyRow, "token" | "refresh_token">>;
      if (won) return { status: "claimed", token: current, refreshToken: this.vault.reveal(won.refresh_token) };
      const [after] = (await this.sql`SELECT token FROM keypool_keys WHERE pool = ${pool} AND id = ${id}`) as Array<
        Pick<KeyRow, "token">
      >;
      if (after && after.token !== row.token) return { status: "superseded", token: this.vault.reveal(after.token) };
      return { status: "busy" };
    });
  }

  async finishRefresh(pool: string, id: string, owner: string, result: RefreshResult): Promise<boolean> {
    return this.transaction(async (tx) => {
      const row = await this.lockKey(tx, pool, id);
      // A lapsed lock may have passed to someone else, and a synced tokens file clears it: either way, not ours to write.
      if (!row || row.refresh_owner !== owner) return false;
      const now = this.clock.now();
      const fields: Fields = { refresh_owner: null, refresh_lock_until: 0 };
      let event: PlannedEvent | undefined;
      if (result.status === "refreshed") {
        const settings = this.settingsOf(pool);
        const plan = await this.decide(tx, settings, now, (ctx) => planRefreshed(factsOf(row, settings), ctx));
        event = plan.event;
        Object.assign(fields, conditionFields(plan), {
          token: this.vault.seal(result.token),
          refresh_token: result.refreshToken === undefined ? row.refresh_token : this.vault.seal(result.refreshToken),
          expires_at: result.expiresAt ?? null,
          consecutive_failures: 0,
        });
      } else if (result.status === "failed") {
        const settings = this.settingsOf(pool);
        const plan = await this.decide(tx, settings, now, (ctx) =>
          planRefreshFailed(factsOf(row, settings), result.reason, settings, ctx),
        );
        event = plan.event;
        Object.assign(fields, conditionFields(plan), { next_check_at: plan.nextCheckAt });
      }
      await this.write(tx, pool, id, fields);
      if (event) await this.logEvents(tx, [eventOf(pool, id, event, now)]);
      return true;
    });
  }

  // ---- reading -------------------------------------------------------------------------------

  async status(pool?: string): Promise<KeyStatus[]> {
    if (pool !== undefined) this.settingsOf(pool);
    await this.settled();
    return this.guard(async () => {
      const now = this.clock.now();
      const [rows, sessions, pairRows, spent] = await Promise.all([
        (pool === undefined
          ? this.sql`SELECT * FROM keypool_keys ORDER BY pool, id`
          : this.sql`SELECT * FROM keypool_keys WHERE pool = ${pool} ORDER BY id`) as Promise<KeyRow[]>,
        this.sessions.countsByKey(this.sql, now),
        // Only pairs that are resting or denied show; spent ones wait for their key's next write to go.
        this.sql`SELECT * FROM keypool_key_models WHERE (${pool ?? null}::text IS NULL OR pool = ${pool ?? null})
                 AND ready_at > ${now}` as Promise<PairRow[]>,
        this.spend.all(this.sql, pool),
      ]);
      const pairs = new Map<string, PairRow[]>();
      for (const pair of pairRows) {
        const key = `${pair.pool}\n${pair.key_id}`;
        pairs.set(key, [...(pairs.get(key) ?? []), pair]);
      }
      return rows.map((row) => {
        const condition = conditionOf(row);
        const budget = budgetOf(row);
        const capped = hasCaps(budget) || hasCaps(this.pools.get(row.pool)?.budget);
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
          sessions: sessions.get(row.pool)?.get(row.id) ?? 0,
          ...modelStatusColumns(modelFactsOf(row.models, pairs.get(`${row.pool}\n${row.id}`) ?? []), now),
          spend: capped ? spendView(spent.get(`${row.pool}\n${row.id}`) ?? EMPTY_SPEND, budget, now) : null,
        };
      });
    });
  }

  async poolSpend(pool: string): Promise<SpendStatus | null> {
    const settings = this.settingsOf(pool);
    if (!hasCaps(settings.budget)) return null;
    const total = await this.guard(() => this.spend.of(this.sql, pool, POOL_TOTAL));
    return spendView(total, settings.budget, this.clock.now());
  }

  async events(query: EventQuery): Promise<KeyEvent[]> {
    if (query.pool !== undefined) this.settingsOf(query.pool);
    // A key's first success may still be in memory, with its event.
    await this.settled();
    const pool = query.pool ?? null;
    const key = query.key ?? null;
    const rows = (await this.guard(() =>
      query.since === undefined
        ? this
            .sql`SELECT * FROM (SELECT * FROM keypool_events WHERE (${pool}::text IS NULL OR pool = ${pool}) AND (${key}::text IS NULL OR key_id = ${key})
                   ORDER BY seq DESC LIMIT ${query.limit}) latest ORDER BY seq`
        : this
            .sql`SELECT * FROM keypool_events WHERE (${pool}::text IS NULL OR pool = ${pool}) AND (${key}::text IS NULL OR key_id = ${key})
                   AND at > ${query.since} ORDER BY seq LIMIT ${query.limit}`,
    )) as Array<EventRow & { model: string | null }>;
    // A pair's transition names its model; the key's own have no `model` at all.
    return rows.map((row) => (row.model === null ? eventOfRow(row) : { ...eventOfRow(row), model: row.model }));
  }

  async findKeyByToken(pool: string, token: string): Promise<string | null> {
    this.settingsOf(pool);
    // Every key is compared, in constant time, so timing says nothing about which key (if any) matched.
    return this.guard(() => this.keyHoldingToken(this.sql, pool, token));
  }

  private async keyHoldingToken(db: Db, pool: string, token: string): Promise<string | null> {
    let found: string | null = null;
    for (const row of (await db`SELECT id, token FROM keypool_keys WHERE pool = ${pool}`) as Array<{
      id: string;
      token: string;
    }>) {
      if (this.vault.holds(row.token, token) && found === null) found = row.id;
    }
    return found;
  }

  // ---- key administration --------------------------------------------------------------------

  async listKeys(pool: string): Promise<KeyRecord[]> {
    this.settingsOf(pool);
    await this.settled();
    const rows = (await this.guard(
      () => this.sql`SELECT * FROM keypool_keys WHERE pool = ${pool} ORDER BY id`,
    )) as KeyRow[];
    const now = this.clock.now();
    return rows.map((row) => this.recordOf(row, now));
  }

  async addKey(pool: string, key: NewKey): Promise<KeyRecord> {
    await this.settled();
    return this.transaction(async (tx) => {
      const settings = this.settingsOf(pool);
      // Two instances adding one id at once: the second waits here, then sees the first's key.
      await tx.unsafe(`SELECT pg_advisory_xact_lock(${SYNC_LOCK})`);
      const [existing] = (await tx`SELECT * FROM keypool_keys WHERE pool = ${pool} AND id = ${key.id}`) as KeyRow[];
      if (existing && existing.origin !== "api") throw ownedError(existing.origin, pool, key.id);
      if (existing)
        throw new DomainError(
          "KEY_EXISTS",
          `pool "${pool}" already has a key "${key.id}"; pick another id, or change that key with PATCH`,
        );
      const twin = await this.keyHoldingToken(tx, pool, key.token);
      if (twin !== null)
        throw new DomainError("KEY_EXISTS", `pool "${pool}" already holds this token as key "${twin}"`);
      const rank = initialRank(settings.rotation, await this.rankContext(tx, pool, settings));
      const limits = mergeOverrides(NO_OVERRIDES, key.limits ?? {});
      const row = this.newKeyRow(
        pool,
        key.id,
        key.token,
        key.weight,
        rank,
        limits.maxConcurrency ?? settings.maxConcurrency ?? null,
        null,
        {
          origin: "api",
          key_group: key.group ?? null,
          ...limitFields(limits),
          budget_day_micros: key.budget?.dayMicros ?? null,
          budget_month_micros: key.budget?.monthMicros ?? null,
        },
      );
      await tx`INSERT INTO keypool_keys ${tx(row)}`;
      return this.recordOf((await this.lockKey(tx, pool, key.id))!, this.clock.now());
    });
  }

  async updateKey(pool: string, id: string, changes: KeyChanges): Promise<KeyRecord> {
    await this.settled();
    return this.transaction(async (tx) => {
      const settings = this.settingsOf(pool);
      const row = await this.lockKey(tx, pool, id);
      if (!row) throw new DomainError("UNKNOWN_KEY", `pool "${pool}" has no key "${id}"`);
      // Switching a key off and on is an operator's call on any key; what the key *is* belongs to whoever defined it.
      const reshapes =
        changes.weight !== undefined ||
        changes.group !== undefined ||
        changes.limits !== undefined ||
        changes.budget !== undefined;
      if (reshapes && row.origin !== "api") throw ownedError(row.origin, pool, id);
      const fields: Fields = {};
      if (changes.weight !== undefined) fields.weight = changes.weight;
      if (changes.group !== undefined) fields.key_group = changes.group ?? null;
      if (changes.limits) {
        const limits = mergeOverrides(overridesOf(row), changes.limits);
        Object.assign(fields, limitFields(limits), {
          max_concurrency: limits.maxConcurrency ?? settings.maxConcurrency ?? null,
        });
      }
      if (changes.enabled !== undefined) {
        const now = this.clock.now();
        const facts = factsOf(row, settings);
        const plan = await this.decide(tx, settings, now, (ctx) => planEnabled(facts, changes.enabled!, ctx));
        if (plan) Object.assign(fields, conditionFields(plan));
        if (plan?.event) await this.logEvents(tx, [eventOf(pool, id, plan.event, now)]);
      }
      await this.write(tx, pool, id, fields);
      if (changes.budget) await this.applyCaps(tx, settings, id, mergeCaps(budgetOf(row), changes.budget));
      return this.recordOf((await this.lockKey(tx, pool, id))!, this.clock.now());
    });
  }

  /**
   * A key's own caps changed through the admin API: counted from what the usage ledger already holds
   * for the current windows, and the key rests at once if that reaches a cap (or comes back if its
   * spent cap went up), as the SQLite store does.
   */
  private async applyCaps(tx: Db, settings: PoolSettings, id: string, caps: SpendCaps | undefined): Promise<void> {
    const pool = settings.name;
    const now = this.clock.now();
    await this.write(tx, pool, id, {
      budget_day_micros: caps?.dayMicros ?? null,
      budget_month_micros: caps?.monthMicros ?? null,
    });
    if (hasCaps(caps)) await this.spend.catchUp(tx, pool, [id], now);
    const row = (await this.lockKey(tx, pool, id))!;
    const facts = { ...factsOf(row, settings), spend: await this.spend.of(tx, pool, id) };
    const plan = await this.decide(tx, settings, now, (ctx) => planCapsChange(facts, ctx));
    if (!plan) return;
    await this.write(tx, pool, id, conditionFields(plan));
    if (plan.event) await this.logEvents(tx, [eventOf(pool, id, plan.event, now)]);
  }

  async removeKey(pool: string, id: string): Promise<void> {
    await this.settled();
    await this.transaction(async (tx) => {
      this.settingsOf(pool);
      const row = await this.lockKey(tx, pool, id);
      if (!row) throw new DomainError("UNKNOWN_KEY", `pool "${pool}" has no key "${id}"`);
      if (row.origin !== "api") throw ownedError(row.origin, pool, id);
      await tx`DELETE FROM keypool_leases WHERE pool = ${pool} AND key_id = ${id}`;
      await tx`DELETE FROM keypool_keys WHERE pool = ${pool} AND id = ${id}`;
      await this.spend.forget(tx, pool, [id]);
    });
  }

  async usage(query: UsageQuery): Promise<UsageReport> {
    if (query.pool !== undefined) this.settingsOf(query.pool);
    const since = windowStart(query.window, this.clock.now());
    await this.settled();
    return { since, keys: await this.guard(() => this.ledger.query(this.sql, query.pool, since)) };
  }

  async sessionUsage(query: SessionUsageQuery): Promise<SessionUsage[]> {
    this.settingsOf(query.pool);
    return this.guard(() => this.sessions.top(this.sql, query.pool, this.clock.now(), query.limit));
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
   * Re-encrypts every stored secret under `cipher`, which becomes this store's key, in one
   * transaction that locks every key row. Instances still running with the old key must restart.
   */
  async reencrypt(cipher: TokenCipher): Promise<{ rewritten: number }> {
    await this.settled();
    const result = await this.transaction(async (tx) => {
      await tx.unsafe(`SELECT pg_advisory_xact_lock(${SYNC_LOCK})`);
      return rewrapVault(tx, this.vault, cipher);
    });
    // Old row versions hold the old ciphertexts until vacuumed; a full vacuum rewrites the table without them.
    await this.guard(() => this.sql.unsafe("VACUUM FULL keypool_keys"));
    return result;
  }

  /** A database has no file to lose; an unreachable one answers STORE_UNAVAILABLE call by call instead. */
  checkStorage(): StorageCheck {
    return { warnings: [] };
  }

  async close(): Promise<void> {
    try {
      await this.settled();
    } catch {
      // An unreachable database loses what only memory had, as kill -9 would (see docs/reliability.md).
    }
    this.hot?.close();
    await this.sql.close({ timeout: this.timeoutSec });
  }

  /**
   * What kill -9 leaves: the connections cut, what only memory held (the last flush's worth of counters
   * and leases) lost. For tests of that guarantee.
   */
  async closeAbruptly(): Promise<void> {
    this.hot?.close();
    await this.sql.close({ timeout: 0 });
  }

  // ---- plumbing ------------------------------------------------------------------------------

  /** Writes what the hot path holds only in memory before a read or a change that must see it. */
  private async settled(): Promise<void> {
    if (this.hot?.unsettled) await this.hot.settle();
  }

  private settingsOf(pool: string): PoolSettings {
    const settings = this.pools.get(pool);
    if (!settings) {
      const known = this.poolNames().join(", ") || "none";
      throw new DomainError("UNKNOWN_POOL", `pool "${pool}" does not exist (pools: ${known})`);
    }
    return settings;
  }

  private lockKey(tx: Db, pool: string, id: string): Promise<KeyRow | undefined> {
    return (tx`SELECT * FROM keypool_keys WHERE pool = ${pool} AND id = ${id} FOR UPDATE` as Promise<KeyRow[]>).then(
      (rows) => rows[0],
    );
  }

  /** One UPDATE of the given columns (names from this file, never from input); the row as written. */
  private async write(tx: Db, pool: string, id: string, fields: Fields): Promise<VersionedRow | undefined> {
    const columns = Object.keys(fields);
    if (columns.length === 0) return undefined;
    const sets = columns.map((c, i) => `${c} = $${i + 1}`).join(", ");
    const [row] = (await tx.unsafe(
      `UPDATE keypool_keys SET ${sets} WHERE pool = $${columns.length + 1} AND id = $${columns.length + 2}
       RETURNING *, xmin::text AS row_version`,
      [...Object.values(fields), pool, id],
    )) as VersionedRow[];
    return row;
  }

  /** Appends transitions and prunes the log back to MAX_EVENTS rows. */
  private async logEvents(tx: Db, events: KeyEvent[]): Promise<void> {
    if (events.length === 0) return;
    const rows = events.map((e) => ({
      at: e.at,
      pool: e.pool,
      key_id: e.key,
      model: e.model ?? null,
      alert: e.alert ?? null,
      from_state: e.from,
      to_state: e.to,
      class: e.class,
      reason: e.reason,
      until: e.until,
    }));
    await tx`WITH added AS (INSERT INTO keypool_events ${tx(rows)} RETURNING seq)
             DELETE FROM keypool_events WHERE seq <= (SELECT max(seq) FROM added) - ${MAX_EVENTS}`;
  }

  /**
   * Runs a planner. Where a key re-enters the rotation it asks for initialRank, which may cost a read
   * of the pool's order: only then is the order read and the (pure) planner run again with it.
   */
  private async decide<T>(db: Db, settings: PoolSettings, now: number, plan: (ctx: DecisionContext) => T): Promise<T> {
    let asked = false;
    const first = plan({
      now,
      random: this.random,
      initialRank: () => {
        asked = true;
        return 0;
      },
    });
    if (!asked) return first;
    const order = await this.rankContext(db, settings.name, settings);
    return plan({ now, random: this.random, initialRank: () => initialRank(settings.rotation, order) });
  }

  /**
   * Opens a transaction unless `db` is one already; inside one, an `undoable` step runs in a savepoint,
   * so that its failure undoes only its own writes.
   */
  private inTransaction<T>(db: Db, fn: (tx: Db) => Promise<T>, options: { undoable?: boolean } = {}): Promise<T> {
    if (db === this.sql) return this.sql.begin((tx) => fn(tx)) as Promise<T>;
    return options.undoable ? ((db as TransactionSQL).savepoint((sp) => fn(sp)) as Promise<T>) : fn(db);
  }

  private async rankContext(db: Db, pool: string, settings: PoolSettings): Promise<RankContext> {
    const virtualTime = settings.rotation === "weighted" ? await this.poolVirtualTime(db, pool) : 0;
    let maxRank = 0;
    if (needsMaxRank(settings.rotation)) {
      const [row] = (await db`SELECT max(rank) AS rank FROM keypool_keys WHERE pool = ${pool} AND takeable`) as Array<{
        rank: number | null;
      }>;
      maxRank = row?.rank ?? 0;
    }
    return { now: this.clock.now(), random: this.random, maxRank, virtualTime };
  }

  /** weighted's virtual time, as every instance sees it (see VIRTUAL_TIME). */
  private async poolVirtualTime(db: Db, pool: string): Promise<number> {
    const [row] = (await db.unsafe(`SELECT ${VIRTUAL_TIME} AS rank`, [pool])) as Array<{ rank: number | null }>;
    return row?.rank ?? 0;
  }

  /** A read or a single statement, failing with STORE_UNAVAILABLE past the deadline or without a database. */
  private guard<T>(op: () => Promise<T>): Promise<T> {
    return withDeadline(op, this.timeoutSec);
  }

  /** A transaction, run again when the server aborted it to break a deadlock. */
  private transaction<T>(fn: (tx: Db) => Promise<T>, timeoutSec = this.timeoutSec): Promise<T> {
    return withDeadline(async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          return (await this.sql.begin((tx) => fn(tx))) as T;
        } catch (error) {
          if (!isRetryable(error) || attempt >= RETRIES) throw error;
        }
      }
    }, timeoutSec);
  }
}

/** The fields whose values differ from the row's. */
function changedFields(row: KeyRow, fields: Fields): Fields {
  const byColumn = row as unknown as Record<string, unknown>;
  return Object.fromEntries(Object.entries(fields).filter(([column, value]) => byColumn[column] !== value));
}

/** What a changed token resets: the new credential starts over. */
const FORGET_TOKEN: Fields = {
  expires_at: null,
  next_check_at: 0,
  refresh_owner: null,
  refresh_lock_until: 0,
  health: "unknown",
  last_check: null,
  last_check_ok: null,
  last_check_status: null,
  last_check_latency_ms: null,
  last_check_reason: null,
  reason: "token replaced",
  ready_at: 0,
  takeable: true,
  consecutive_failures: 0,
  fail_class: null,
  rung: 0,
  fail_until: 0,
  remaining_requests: null,
  remaining_tokens: null,
  remaining_reset_at: null,
  minute_start: 0,
  minute_requests: 0,
  minute_tokens: 0,
  day_start: 0,
  day_requests: 0,
};

const NO_OVERRIDES = { maxConcurrency: null, rpm: null, tpm: null, dailyRequests: null };

function limitFields(limits: ReturnType<typeof overridesOf>): Fields {
  return {
    limit_max_concurrency: limits.maxConcurrency,
    limit_rpm: limits.rpm,
    limit_tpm: limits.tpm,
    limit_daily_requests: limits.dailyRequests,
  };
}

function unknownLease(lease: string): DomainError {
  return new DomainError("UNKNOWN_LEASE", `lease "${lease}" is unknown or has expired; take a new key`);
}

/** Applies the schema steps this database lacks, under a lock: instances starting at once migrate one after another. */
async function migrateSchema(tx: Db): Promise<void> {
  await tx.unsafe(`SELECT pg_advisory_xact_lock(${MIGRATE_LOCK})`);
  await tx`CREATE TABLE IF NOT EXISTS keypool_meta (name text PRIMARY KEY, value text NOT NULL)`;
  const [row] = (await tx`SELECT value FROM keypool_meta WHERE name = 'schema_version'`) as Array<{ value: string }>;
  const current = row ? Number(row.value) : 0;
  if (current > MIGRATIONS.length) {
    throw new Error(
      `the database schema (version ${current}) is newer than this keypool understands (${MIGRATIONS.length}); upgrade keypool`,
    );
  }
  for (let version = current; version < MIGRATIONS.length; version++) await tx.unsafe(MIGRATIONS[version]!);
  if (current < MIGRATIONS.length) {
    await tx`INSERT INTO keypool_meta (name, value) VALUES ('schema_version', ${String(MIGRATIONS.length)})
             ON CONFLICT (name) DO UPDATE SET value = excluded.value`;
  }
}

/** The key's facts with its models: its restriction, and its pair for the release's model when it has one. */
function modelAwareFacts(row: KeyRow, settings: PoolSettings, pair: PairColumns | null): KeyFacts & ModelFacts {
  return { ...factsOf(row, settings), ...modelFactsOf(row.models, pair ? [pair] : []) };
}

/** The outcome as the planners see it: a release without a model is for the model its take named (and priced so). */
function withModel(outcome: Outcome, model: string | undefined): Outcome {
  return model === undefined || outcome.model === model ? outcome : { ...outcome, model };
}

/** What a release writes besides the key's row: its pair (when the plan changes it) and every event. */
function pairWriteOf(
  row: KeyRow,
  plan: ModelReleasePlan,
  before: PairColumns | null,
  now: number,
): { pair?: PairWrite; events: KeyEvent[] } {
  const events = plan.event ? [eventOf(row.pool, row.id, plan.event, now)] : [];
  if (!plan.pair) return { events };
  const { model, state, event } = plan.pair;
  if (event) events.push(pairEventOf(row.pool, row.id, event, now));
  const columns = pairColumnsOf(model, state, now);
  return changesPair(before, columns) ? { pair: { model, columns }, events } : { events };
}

function releaseResultOf(row: KeyRow, plan: ModelReleasePlan, model: string | undefined, now: number): ReleaseResult {
  const result: ReleaseResult = {
    pool: row.pool,
    id: row.id,
    state: stateOf(plan.condition, now),
    reason: plan.condition.reason,
  };
  if (plan.modelDenied) result.modelDenied = true;
  if (model !== undefined && plan.pair) {
    const state = pairStateOf(onePair(model, plan.pair.state), model, now);
    if (state === "cooling" || state === "denied")
      result.pair = { model, state, until: plan.pair.state.readyAt, reason: plan.pair.state.reason };
  }
  return result;
}

function conditionOf(row: KeyRow): KeyCondition {
  return { health: row.health, reason: row.reason, readyAt: row.ready_at };
}

const NOT_RESTING: KeyCondition = { health: "live", reason: null, readyAt: 0 };

/** Thrown inside a take's transaction to undo it: the pair of the take's model rests (see countModelTake). */
class PairResting extends Error {}

/** What a take asks for: a key of the pool, not one of `exclude`, usable for `model` when it names one. */
interface TakeRequest {
  settings: PoolSettings;
  now: number;
  exclude: string[];
  leaseId: string;
  model?: string;
}

/** What every statement of one take shares: its lease, and what the rotation and the rest after a take make of it. */
class TakeAttempt {
  readonly settings: PoolSettings;
  readonly now: number;
  readonly exclude: string[];
  readonly leaseId: string;
  readonly model?: string;
  /** The pool's model_limits for the take's model, if any: an rpm is counted on the pair (countModelTake). */
  readonly modelLimit?: ModelLimit;
  readonly expiresAt: number;
  /** random's new rank for the taken key. */
  private readonly rank: number;
  /** afterTake's rest, as the take statement applies it to the row's own (see takeSql). */
  private readonly restFloor: number;
  private readonly restReason: string | null;

  constructor(request: TakeRequest, random: () => number) {
    const { settings, now } = request;
    this.settings = settings;
    this.now = now;
    this.exclude = request.exclude;
    this.leaseId = request.leaseId;
    this.model = request.model;
    this.modelLimit = request.model === undefined ? undefined : settings.modelLimits?.[request.model];
    this.expiresAt = now + settings.leaseTtlSec * 1000;
    this.rank = settings.rotation === "random" ? random() : 0;
    const rested = afterTake(NOT_RESTING, settings, now);
    this.restFloor = rested === NOT_RESTING ? 0 : rested.readyAt;
    this.restReason = rested === NOT_RESTING ? null : rested.reason;
  }

  /** takeSql's parameters, walking from `from`. */
  params(from: number | string[]): unknown[] {
    const s = this.settings;
    const params: unknown[] = [
      s.name,
      this.now,
      from,
      this.exclude,
      this.leaseId,
      this.expiresAt,
      this.restFloor,
      this.restReason,
      this.rank,
      s.rpm ?? null,
      s.dailyRequests ?? null,
    ];
    if (this.model !== undefined) params.push(this.model);
    return params;
  }
}

/**
 * A key a lease is on, as a release plans from it: the key's row with its version, the model the take
 * named (null: none) and, when known, the key's pair for a model (columns null: no row) read with that
 * version of the row.
 */
interface LeasedKey {
  row: VersionedRow;
  model: string | null;
  pair?: SeenPair;
}

/** A row of the take statement (see takeSql). */
type TakenRow = VersionedRow & { taken: boolean; pair?: PairJson | null; pair_seen?: boolean };

/**
 * What a take statement's row tells a release. The pair it read may predate the lock (the release's
 * guard finds that out); counting the take on it needs the pair as locked (`fresh`: pair_seen).
 */
function leasedKeyOf(taken: TakenRow, model: string | undefined, fresh = false): LeasedKey {
  const { taken: _, pair, pair_seen, ...row } = taken;
  if (model === undefined) return { row, model: null };
  return fresh && !pair_seen ? { row, model } : { row, model, pair: seenPairOf(model, pair ?? null) };
}

/** A key's own caps as its row keeps them (null: none). */
function budgetFields(key: KeyInput): Fields {
  return { budget_day_micros: key.budget?.dayMicros ?? null, budget_month_micros: key.budget?.monthMicros ?? null };
}

/** Whether a release's cost is counted against caps: it cost something (or an unknown amount) and a cap applies. */
function countsSpend(plan: ModelReleasePlan, row: KeyRow, settings: PoolSettings): boolean {
  return plan.spend !== undefined && (hasCaps(settings.budget) || hasCaps(budgetOf(row)));
}
