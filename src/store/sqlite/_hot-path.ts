import type { Database, SQLQueryBindings, Statement } from "bun:sqlite";
import type { Clock } from "../../pool/clock";
import { type KeyState, type Outcome, stateOf } from "../../pool/key-state";
import type { ModelState } from "../../pool/model-facts";
import { hasCaps } from "../../pool/budget";
import { planModelRelease } from "../../pool/plan-model";
import { pickStart } from "../../pool/rotation";
import { factsOf, windowsOf } from "../key-columns";
import { allowedModelsOf, modelStateOf, pairColumnsOf } from "../model-columns";
import type { Lease, PoolSettings } from "../types";
import { USAGE_COUNT_COLUMNS } from "../usage-entry";
import { INSERT_EVENT_SQL, MAX_EVENTS, PRUNE_EVENTS_SQL, eventParams } from "./_key-policy";
import { type WriteStep, runWriteSteps } from "./_write-steps";
import type { ModelPairs, PairRow } from "./_model-pairs";
import { HotSessions } from "./_hot-sessions";
import { COPIED_COLUMNS, type CopiedKey, type CopiedPool, PoolCopy, changesOnlyCounts } from "../pool-copy";
import { newLeaseId } from "../lease-id";

/** A key as this store's copy keeps it. */
type KeyRow = CopiedKey<number>;

/**
 * Counters, the rotation order and leases reach the file at most this long after the take or release
 * that changed them (the issue allows a second; a shorter wait keeps each flush small).
 */
export const FLUSH_EVERY_MS = 200;

/** Entries of the key log kept when it is pruned: a copy more than this many changes behind reads everything. */
const KEY_LOG_KEPT = 100_000;

/**
 * Transactions committed by any store of this process. Two stores in one process (a library beside a
 * daemon, or tests) share a turn of the event loop, so the once-per-turn look at data_version would
 * miss a commit the other made earlier in the same turn; this counter makes the look happen again.
 */
let commitsInProcess = 0;

/** Called by the store after each of its write transactions. */
export function noteCommit(): void {
  commitsInProcess++;
}

/** A lease handed out by the hot path; `stored` once a flush wrote its row. */
interface HotLease {
  pool: string;
  id: string;
  expiresAt: number;
  stored: boolean;
  /** foreignCommits when the lease was last known to be in the file (another process may release it there). */
  seenAt: number;
  /** The model the take named: a release that names none is about this one. */
  model: string | undefined;
}

/** The (key, model) pairs of a pool's keys that say something (see model-columns.ts), by key id then model. */
type PoolPairs = Map<string, Map<string, ModelState>>;

export interface HotPathOptions {
  db: Database;
  clock: Clock;
  random: () => number;
  reveal: (sealed: string) => string;
  /**
   * Blocks until every flush handed to another connection has committed or failed: a copy read back
   * from the file before then would miss that flush's counts.
   */
  settleWrites: () => void;
  /** Whether a flush handed to another connection may still be writing. */
  writesInFlight: () => boolean;
  /**
   * The key log's end before and after the last flush another connection committed (LOG_MARK_SQL): the
   * entries between are this copy's own (a first success it already holds), not worth reading back.
   */
  ownLogEntries: () => { before: number; after: number } | undefined;
  /** The store's (key, model) pair statements, to read the pairs into the copy. */
  pairs: ModelPairs;
}

interface LogEntry {
  seq: number;
  pool: string;
  id: string;
}

/** One flush: its writes, and what to do with what they found (see runWriteSteps). */
export interface HotFlush {
  steps: WriteStep[];
  settle(missing: number[][]): void;
}

/**
 * The SQLite store's in-memory hot path. Most takes and releases change nothing another process
 * decides on: a key without a lease cap, request limits or a rest after each take is handed out, and
 * a success comes back. Those are decided here, on this process's copy of the pool's keys, with no
 * statement on the request path; their counters, rank and leases are written by a flush every
 * FLUSH_EVERY_MS (a lease taken and released in between never reaches the file at all).
 *
 * Everything else — exclusive keys, limits, failures, checks, refreshes, operators' changes — goes
 * through the store's transactions as before, after a flush, so the file always decides those.
 * The copy stays current: before a take it asks SQLite whether any other connection committed since
 * it last looked (`PRAGMA data_version`, once per event-loop turn: every request handled in a turn
 * arrived before the turn began, so none of them can have been sent after a commit the look missed)
 * and then reads only the rows changed since (migration 9's change numbers).
 */
export class HotPath {
  private readonly db: Database;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly reveal: (sealed: string) => string;
  private readonly settleWrites: () => void;
  private readonly writesInFlight: () => boolean;
  private readonly ownLogEntries: HotPathOptions["ownLogEntries"];
  /** Key-log ranges written by this copy's own flushes and not read past yet (see noteOwnLogEntries). */
  private ownEntries: Array<{ before: number; after: number }> = [];
  private readonly modelPairs: ModelPairs;
  private readonly copy: PoolCopy<KeyRow>;
  /** Each copied pool's (key, model) pairs, by pool name. */
  private readonly pairs = new Map<string, PoolPairs>();
  private readonly leases = new Map<string, HotLease>();
  /** Stored leases given back (or lapsed) since the last flush. */
  private released: Array<{ lease: string; pool: string; id: string }> = [];
  private readonly sql: ReturnType<typeof prepare>;
  private readonly sessions: HotSessions;
  private dataVersion = -1;
  /** The last entry of the file's key log (migration 9) this copy has read. */
  private lastSeq = 0;
  private nextLogPrune = 0;
  /** Set by the store after a transaction of its own changed keys: the copy reads them back. */
  private stale = true;
  private lookedThisTurn = false;
  private commitsSeen = -1;
  /** How many times another connection was found to have committed. */
  private foreignCommits = 0;
  private flushTimer: Timer | undefined;
  private nextLapseCheck = 0;

  constructor(options: HotPathOptions) {
    this.db = options.db;
    this.clock = options.clock;
    this.random = options.random;
    this.reveal = options.reveal;
    this.settleWrites = options.settleWrites;
    this.writesInFlight = options.writesInFlight;
    this.ownLogEntries = options.ownLogEntries;
    this.modelPairs = options.pairs;
    this.copy = new PoolCopy(options.random);
    this.sql = prepare(options.db);
    this.sessions = new HotSessions(options.db);
    this.lastSeq = this.logEnd();
  }

  /**
   * A take decided in memory, or undefined when the store must decide it (nothing ready here, or
   * the key it would hand out is arbitrated in the file). Never throws for lack of a key.
   */
  take(settings: PoolSettings, exclude: readonly string[], session?: string, model?: string): Lease | undefined {
    // A model's own request limit is counted in the file, like a key's; so is a pool's spend against its cap.
    if (model !== undefined && settings.modelLimits?.[model]?.rpm !== undefined) return undefined;
    if (hasCaps(settings.budget)) return undefined;
    this.refresh();
    const pool = this.poolOf(settings);
    const now = this.clock.now();
    if (now >= this.nextLapseCheck) this.lapseLeases(now);
    const pairs = this.pairs.get(settings.name);
    const usable = (key: KeyRow) =>
      this.copy.ready(key, now) &&
      (exclude.length === 0 || !exclude.includes(key.id)) &&
      (model === undefined || servesModel(pairs, key, model, now));
    // A sticky session tries its own key (then the one it is detouring on) before the rotation does.
    const sticky =
      session === undefined
        ? undefined
        : this.sessions.lookup(settings.name, session, now, (id) => {
            const health = pool.rows.get(id)?.health;
            return health === "unknown" || health === "live";
          });
    let row: KeyRow | undefined;
    for (const id of sticky?.candidates ?? NO_IDS) {
      const key = pool.rows.get(id);
      if (key?.takeable && usable(key)) {
        row = key;
        break;
      }
    }
    // Any other take for a session changes its mapping, which the file's transaction records.
    if (sticky && (row === undefined || row.id !== sticky.own)) return undefined;
    row ??= pool.order.find(pickStart(settings.rotation, this.random), usable);
    if (!row || !this.copy.take(pool, row, settings, now)) return undefined;
    const lease: Lease = {
      lease: newLeaseId(),
      pool: settings.name,
      id: row.id,
      token: this.reveal(row.token),
      takenAt: now,
      expiresAt: now + settings.leaseTtlSec * 1000,
    };
    if (sticky) this.sessions.backOnOwn(sticky, now, { ttlSec: settings.sessionTtlSec });
    this.leases.set(lease.lease, {
      pool: lease.pool,
      id: lease.id,
      expiresAt: lease.expiresAt,
      stored: false,
      seenAt: 0,
      model,
    });
    this.scheduleFlush();
    return lease;
  }

  /**
   * A release decided in memory: a lease this process handed out, given back with an outcome that
   * changes nothing other processes decide on. Undefined otherwise: the store decides it.
   */
  release(
    leaseId: string,
    outcome: Outcome,
    settingsOf: (pool: string) => PoolSettings,
  ): { pool: string; id: string; state: KeyState; reason: string | null } | undefined {
    const lease = this.leases.get(leaseId);
    if (!lease) return undefined;
    const now = this.clock.now();
    if (lease.expiresAt <= now) return undefined;
    this.refresh();
    if (lease.stored && lease.seenAt !== this.foreignCommits) {
      // Written to the file, where another process may have released it since: the file decides.
      if (this.sql.leaseExists.get(leaseId) === null) return undefined;
      lease.seenAt = this.foreignCommits;
    }
    const pool = this.copy.pools.get(lease.pool);
    const row = pool?.rows.get(lease.id);
    if (!pool || !row) return undefined;
    const settings = settingsOf(lease.pool);
    const models = this.pairs.get(lease.pool)?.get(row.id) ?? NO_PAIRS;
    const facts = factsOf(row, settings, { allowedModels: allowedModelsOf(row.models), models });
    const model = outcome.model ?? lease.model;
    const plan = planModelRelease(facts, model, outcome, settings, this.copy.decisionContext(settings, pool, now), 1);
    // Anything another process must see at its next take goes through the file's transaction; so
    // does whatever changes a (key, model) pair.
    const decidedElsewhere =
      !changesOnlyCounts(plan, facts, settings) ||
      (plan.pair !== undefined &&
        (plan.pair.changesCondition ||
          plan.pair.event !== undefined ||
          models.has(plan.pair.model) ||
          pairColumnsOf(plan.pair.model, plan.pair.state, now) !== null));
    if (decidedElsewhere) return undefined;
    this.leases.delete(leaseId);
    if (lease.stored) this.released.push({ lease: leaseId, pool: lease.pool, id: lease.id });
    this.copy.release(pool, row, plan, outcome, now);
    if (outcome.session !== undefined) this.sessions.addUsage(row.pool, outcome.session, outcome.usage);
    this.scheduleFlush();
    return { pool: row.pool, id: row.id, state: stateOf(plan.condition, now), reason: plan.condition.reason };
  }

  /** Whether this process handed out the lease and has not seen it back (a store transaction must also forget it). */
  forgetLease(leaseId: string): void {
    this.leases.delete(leaseId);
  }

  /** The store's own transaction changed keys: read them back before the next decision here. */
  markStale(): void {
    this.stale = true;
  }

  /**
   * The key log's entries a flush of this copy's wrote on another connection (between `before` and
   * `after`): the copy already holds those changes, so it does not read them back.
   */
  noteOwnLogEntries(range: { before: number; after: number }): void {
    if (range.after > range.before && range.after > this.lastSeq) this.ownEntries.push(range);
  }

  /** Forgets every copy (the pools were re-declared); call after a flush. Each pool is read whole when next used. */
  reset(): void {
    this.copy.pools.clear();
    this.pairs.clear();
    this.lastSeq = this.logEnd();
    this.stale = true;
  }

  /**
   * Reads a pool's copy now rather than at its first take: a pool of 100,000 keys takes a second or two
   * to read, which belongs to start-up, not to the first request.
   */
  preload(settings: PoolSettings): void {
    this.poolOf(settings);
  }

  /**
   * Takes what only memory knows — counters, ranks, budgets, windows, open leases, given-back leases,
   * usage, sessions — as the writes of one flush, and forgets it here: from now on the flush owns it.
   * The store runs the writes inside a transaction of its own (`runWriteSteps`), on its connection or on
   * the checkpoint worker's, and hands what they found back to `settle`.
   */
  collectFlush(): HotFlush {
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    const given = this.released;
    this.released = [];
    const now = this.clock.now();
    const leases: SQLQueryBindings[][] = [];
    for (const [leaseId, lease] of this.leases) {
      if (lease.stored) continue;
      leases.push([leaseId, lease.pool, lease.id, now, lease.expiresAt, lease.model ?? null]);
      lease.stored = true;
      lease.seenAt = this.foreignCommits;
    }
    const drained = this.copy.drain();
    const counts: SQLQueryBindings[][] = [];
    const countsAndWindows: SQLQueryBindings[][] = [];
    const budgets: SQLQueryBindings[][] = [];
    const confirmed: SQLQueryBindings[][] = [];
    const events: SQLQueryBindings[][] = [];
    for (const { row, counts: pending } of drained.keys) {
      const { pool, id } = row;
      const rank = pending.rank ? row.rank : null;
      const { inFlight, requests, errors, lastUsed } = pending;
      if (pending.windows) {
        // One statement for both: a key's row is found and rewritten once, not twice.
        const w = windowsOf(row);
        countsAndWindows.push([
          rank,
          inFlight,
          requests,
          errors,
          lastUsed,
          pool,
          id,
          w.minuteStart,
          w.minuteRequests,
          w.minuteTokens,
          w.dayStart,
          w.dayRequests,
        ]);
      } else {
        counts.push([rank, inFlight, requests, errors, lastUsed, pool, id]);
      }
      if (pending.budget)
        budgets.push([row.remaining_requests, row.remaining_tokens, row.remaining_reset_at, pool, id]);
      // Only if nothing else changed the key since: a quarantine another process wrote stands.
      if (pending.confirmed) {
        confirmed.push([row.reason, pool, id]);
        events.push(eventParams(pending.confirmed));
      }
    }
    const usage = drained.usage.map(({ pool, id, hour, counts }) => [pool, id, hour, ...counts]);
    const steps: WriteStep[] = [
      { sql: DELETE_LEASE_SQL, rows: given.map((g) => [g.lease]), reportMissing: true },
      { sql: INSERT_LEASE_SQL, rows: leases },
      { sql: ADD_COUNTS_SQL, rows: counts },
      { sql: ADD_COUNTS_AND_WINDOWS_SQL, rows: countsAndWindows },
      { sql: WRITE_BUDGET_SQL, rows: budgets },
      { sql: CONFIRM_LIVE_SQL, rows: confirmed, onChange: { sql: INSERT_EVENT_SQL, rows: events } },
      { sql: PRUNE_EVENTS_SQL, rows: confirmed.length > 0 ? [[MAX_EVENTS]] : [] },
      { sql: ADD_USAGE_SQL, rows: usage },
      ...this.sessions.collectFlush(),
    ];
    if (now >= this.nextLogPrune) {
      this.nextLogPrune = now + 60_000;
      steps.push({ sql: PRUNE_LOG_SQL, rows: [[KEY_LOG_KEPT]] });
    }
    const written = steps.filter((step) => step.rows.length > 0);
    const deletes = written.indexOf(steps[0]!);
    return {
      steps: written,
      settle: (missing) => {
        // Another process reclaimed a lapsed lease first: it gave back the slot, so this flush's
        // decrement was one too many.
        const lost = deletes < 0 ? [] : (missing[deletes] ?? []);
        if (lost.length === 0) return;
        for (const index of lost) {
          const { pool, id } = given[index]!;
          const row = this.copy.pools.get(pool)?.rows.get(id);
          if (row) this.copy.pendingOf(row).inFlight++;
        }
        this.scheduleFlush();
      },
    };
  }

  /** Writes what only memory knows now, inside the caller's transaction on the store's own connection. */
  flushInto(): void {
    const flush = this.collectFlush();
    flush.settle(runWriteSteps(this.db, flush.steps));
  }

  /** Whether anything waits to be written. */
  get dirty(): boolean {
    return this.copy.hasPending || this.released.length > 0 || this.hasUnstoredLeases() || this.sessions.dirty;
  }

  /** Stops the flush timer; the store flushes once more itself. */
  close(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
  }

  /** Set by the store: runs flushInto in a write transaction of its own. */
  onFlushDue: () => void = () => {};

  private hasUnstoredLeases(): boolean {
    for (const lease of this.leases.values()) if (!lease.stored) return true;
    return false;
  }

  private scheduleFlush(): void {
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.onFlushDue();
    }, FLUSH_EVERY_MS);
    this.flushTimer.unref?.();
  }

  /**
   * Leases never given back within their TTL free their slot. One this process never wrote is
   * settled here; one already in the file is deleted by the next flush (or by whichever process
   * reclaims it first).
   */
  private lapseLeases(now: number): void {
    this.nextLapseCheck = now + 1000;
    for (const [leaseId, lease] of this.leases) {
      if (lease.expiresAt > now) continue;
      this.leases.delete(leaseId);
      const pool = this.copy.pools.get(lease.pool);
      const row = pool?.rows.get(lease.id);
      if (lease.stored) this.released.push({ lease: leaseId, pool: lease.pool, id: lease.id });
      if (pool && row) this.copy.lapse(pool, row);
    }
    this.scheduleFlush();
  }

  /**
   * Brings the copy up to date with the file: once per event-loop turn, or at once after one of the
   * store's own transactions changed keys.
   */
  private refresh(): void {
    if (this.lookedThisTurn && !this.stale && this.commitsSeen === commitsInProcess) return;
    this.commitsSeen = commitsInProcess;
    if (!this.lookedThisTurn) {
      this.lookedThisTurn = true;
      setImmediate(() => {
        this.lookedThisTurn = false;
      });
    }
    const version = this.dataVersionNow();
    if (version === this.dataVersion && !this.stale) return;
    if (version !== this.dataVersion) this.foreignCommits++;
    this.dataVersion = version;
    this.stale = false;
    let end = this.logEnd();
    if (end === this.lastSeq && this.sessions.size === 0) return;
    let changes = this.changesUpTo(end);
    // Rows read back must hold the flush the worker may be writing, or its counts would go missing here.
    if ((changes === "all" || changes.length > 0 || this.sessions.size > 0) && this.writesInFlight()) {
      this.settleWrites();
      end = this.logEnd();
      changes = this.changesUpTo(end);
    }
    // Session mappings are not in the key log: they are read again.
    this.sessions.clear();
    if (changes === "all") {
      for (const [name, pool] of [...this.copy.pools]) this.load(name, pool.rotation);
    } else {
      for (const { pool, id } of changes) this.reread(pool, id);
    }
    this.lastSeq = end;
    this.ownEntries = this.ownEntries.filter((range) => range.after > end);
  }

  /**
   * The keys named in the key log after what this copy read, up to `end`, leaving out the entries this
   * copy's own flushes wrote; "all" when the log was pruned past what it read (every pool is read whole).
   */
  private changesUpTo(end: number): Array<{ pool: string; id: string }> | "all" {
    // Nothing copied yet: every pool is read whole when first used.
    if (end === this.lastSeq || this.copy.pools.size === 0) return [];
    const start = (this.sql.logStart.get() as { seq: number | null }).seq ?? end;
    if (start > this.lastSeq + 1) return "all";
    const latest = this.ownLogEntries();
    const own = latest ? [...this.ownEntries, latest] : this.ownEntries;
    const keys = new Map<string, { pool: string; id: string }>();
    for (const { seq, pool, id } of this.sql.changedSince.all(this.lastSeq, end) as LogEntry[]) {
      if (!own.some((range) => seq > range.before && seq <= range.after)) keys.set(`${pool}\n${id}`, { pool, id });
    }
    return [...keys.values()];
  }

  private dataVersionNow(): number {
    return (this.sql.dataVersion.get() as { data_version: number }).data_version;
  }

  private logEnd(): number {
    return (this.sql.logEnd.get() as { seq: number | null }).seq ?? 0;
  }

  /** A key another transaction changed: its row (and pairs) replace the copy's, with this process's unwritten counts on top. */
  private reread(poolName: string, id: string): void {
    const pairs = this.pairs.get(poolName);
    if (!pairs) return;
    const fresh = this.sql.keyById.get(poolName, id) as KeyRow | null;
    this.copy.replace(poolName, id, fresh);
    if (fresh) setPairs(pairs, id, this.modelPairs.pairsOfKey(poolName, id));
    else pairs.delete(id);
  }

  private poolOf(settings: PoolSettings): CopiedPool<KeyRow> {
    return this.copy.pools.get(settings.name) ?? this.load(settings.name, settings.rotation);
  }

  /** Reads a pool whole into the copy, with its pairs. */
  private load(name: string, rotation: PoolSettings["rotation"]): CopiedPool<KeyRow> {
    const pairs: PoolPairs = new Map();
    for (const [key, rows] of this.modelPairs.pairsByKey(name)) setPairs(pairs, key.slice(name.length + 1), rows);
    this.pairs.set(name, pairs);
    return this.copy.fill(name, rotation, this.sql.poolKeys.all(name) as KeyRow[]);
  }
}

const NO_PAIRS: ReadonlyMap<string, ModelState> = new Map();
const NO_IDS: readonly string[] = [];

function setPairs(pairs: PoolPairs, id: string, rows: readonly PairRow[]): void {
  if (rows.length === 0) pairs.delete(id);
  else pairs.set(id, new Map(rows.map((row) => [row.model, modelStateOf(row)])));
}

/** Whether the key may serve `model` now, as far as the model is concerned (isUsableForModel on the copy). */
function servesModel(pairs: PoolPairs | undefined, key: KeyRow, model: string, now: number): boolean {
  if (key.models !== null && !allowedModelsOf(key.models)!.has(model)) return false;
  const pair = pairs?.get(key.id)?.get(model);
  return pair === undefined || pair.readyAt <= now;
}

function prepare(db: Database) {
  const q = (sql: string): Statement => db.query(sql);
  return {
    dataVersion: q(`PRAGMA data_version`),
    logEnd: q(`SELECT MAX(seq) AS seq FROM key_log`),
    logStart: q(`SELECT MIN(seq) AS seq FROM key_log`),
    changedSince: q(`SELECT seq, pool, id FROM key_log WHERE seq > ?1 AND seq <= ?2`),
    keyById: q(`SELECT ${COPIED_COLUMNS.join(", ")} FROM keys WHERE pool = ?1 AND id = ?2`),
    poolKeys: q(`SELECT ${COPIED_COLUMNS.join(", ")} FROM keys WHERE pool = ?1`),
    leaseExists: q(`SELECT 1 FROM leases WHERE lease = ?1`),
  };
}

/** The key log's end, read around a flush written on another connection (see ownLogEntries). */
export const LOG_MARK_SQL = `SELECT COALESCE(MAX(seq), 0) AS seq FROM key_log`;

// A flush's writes (see collectFlush), as SQL text: they may run on another connection.
const DELETE_LEASE_SQL = `DELETE FROM leases WHERE lease = ?1 RETURNING pool, key_id`;
const INSERT_LEASE_SQL = `INSERT INTO leases (lease, pool, key_id, taken_at, expires_at, model)
                          VALUES (?1, ?2, ?3, ?4, ?5, ?6)`;
/** A key's counters and rank as a flush adds them: ?1–?5, the key being ?6 (pool) and ?7 (id). */
const ADD_COUNTS_SET = `rank = COALESCE(?1, rank), in_flight = MAX(0, in_flight + ?2), requests = requests + ?3,
                        errors = errors + ?4, last_used = MAX(COALESCE(last_used, 0), ?5)`;
const ADD_COUNTS_SQL = `UPDATE keys SET ${ADD_COUNTS_SET} WHERE pool = ?6 AND id = ?7`;
/** ADD_COUNTS_SQL and the request-limit windows (as WRITE_WINDOWS_SQL writes them, ?8–?12) in one statement. */
const ADD_COUNTS_AND_WINDOWS_SQL = `UPDATE keys SET ${ADD_COUNTS_SET}, minute_start = ?8, minute_requests = ?9,
                                     minute_tokens = ?10, day_start = ?11, day_requests = ?12
                                   WHERE pool = ?6 AND id = ?7`;
const WRITE_BUDGET_SQL = `UPDATE keys SET remaining_requests = ?1, remaining_tokens = ?2, remaining_reset_at = ?3
                          WHERE pool = ?4 AND id = ?5`;
const CONFIRM_LIVE_SQL = `UPDATE keys SET health = 'live', reason = ?1 WHERE pool = ?2 AND id = ?3 AND health = 'unknown'`;
const PRUNE_LOG_SQL = `DELETE FROM key_log WHERE seq <= (SELECT MAX(seq) FROM key_log) - ?1`;

/** Adds a whole flush's worth of one key's hour to its ledger row (requests included, unlike a single release). */
const ADD_USAGE_SQL = (() => {
  const columns = USAGE_COUNT_COLUMNS;
  const values = columns.map((_, i) => `?${i + 4}`).join(", ");
  const adds = columns.map((c) => `${c} = ${c} + excluded.${c}`).join(", ");
  return `INSERT INTO usage_hourly (pool, key_id, hour, ${columns.join(", ")}) VALUES (?1, ?2, ?3, ${values})
          ON CONFLICT (pool, key_id, hour) DO UPDATE SET ${adds}`;
})();
