import type { KeyColumns } from "./key-columns";
import { hasCaps } from "../pool/budget";
import { isReady } from "../pool/choose-key";
import type { DecisionContext, KeyFacts } from "../pool/key-facts";
import type { Outcome } from "../pool/key-state";
import type { ModelReleasePlan } from "../pool/plan-model";
import { planTake, takeNeedsArbitration } from "../pool/plan-take";
import { fullAt } from "../pool/rate-limit-headers";
import { type RankContext, busyRank, initialRank, needsMaxRank, virtualTimeOf } from "../pool/rotation";
import { hourOf } from "../pool/usage";
import { FAILURE_CLASSES } from "../pool/vocabulary";
import { KEY_STATES } from "../pool/key-state";
import { factsOf } from "./key-columns";
import { RankOrder } from "./rank-order";
import type { KeyEvent, PoolSettings } from "./types";
import { USAGE_COUNT_COLUMNS, type UsageEntry, addUsageEntry } from "./usage-entry";

/**
 * The columns of a stored key the copy decides on and flushes; the others (checks, refresh tokens,
 * the token as configured) stay in the store, so a 100,000-key copy does not hold them.
 */
export const COPIED_COLUMNS = [
  "pool",
  "id",
  "token",
  "weight",
  "health",
  "reason",
  "ready_at",
  "takeable",
  "rank",
  "max_concurrency",
  "in_flight",
  "last_used",
  "requests",
  "errors",
  "consecutive_failures",
  "next_check_at",
  "expires_at",
  "models",
  "origin",
  "limit_max_concurrency",
  "limit_rpm",
  "limit_tpm",
  "limit_daily_requests",
  "key_group",
  "fail_class",
  "rung",
  "fail_until",
  "remaining_requests",
  "remaining_tokens",
  "remaining_reset_at",
  "minute_start",
  "minute_requests",
  "minute_tokens",
  "day_start",
  "day_requests",
  "budget_day_micros",
  "budget_month_micros",
] as const satisfies ReadonlyArray<keyof KeyColumns<number>>;

/** A stored key as the copy keeps it; `Flag` is how the store keeps a boolean (SQLite 0/1, PostgreSQL booleans). */
export type CopiedKey<Flag extends number | boolean> = Pick<KeyColumns<Flag>, (typeof COPIED_COLUMNS)[number]>;

/** A stored key as either store reads it into the copy. */
export type CopiedRow = CopiedKey<number | boolean>;

/** What this process has done to a key that the store does not know yet. */
export interface PendingCounts {
  inFlight: number;
  requests: number;
  errors: number;
  lastUsed: number;
  /** The rank, remaining budget and windows in memory are newer than the store's. */
  rank: boolean;
  budget: boolean;
  windows: boolean;
  /** A first success (unknown → live) the store has not recorded yet, with its event. */
  confirmed?: KeyEvent;
}

/** A pool's keys as this process last read them, the takeable ones in rotation order. */
export interface CopiedPool<Row extends CopiedRow> {
  name: string;
  rotation: PoolSettings["rotation"];
  rows: Map<string, Row>;
  order: RankOrder<Row>;
}

/** Usage of one key in one hour not yet in the store's ledger; `counts` are usage_hourly's columns, requests first. */
export interface PendingUsage {
  pool: string;
  id: string;
  hour: number;
  counts: number[];
}

/** What a flush takes out of the copy: each key's pending counts (with the row holding them) and usage. */
export interface DrainedCounts<Row extends CopiedRow> {
  keys: Array<{ row: Row; counts: PendingCounts }>;
  usage: PendingUsage[];
}

/**
 * The in-memory copy of pools both stores' hot paths decide on (src/store/sqlite/_hot-path.ts,
 * src/store/postgres/_hot-path.ts): the keys in rotation order, and what this process has done to them
 * that the store has not been told yet. The decisions are the planners' (src/pool); this applies their
 * plans to the copy. How a store keeps the copy current and writes what it holds is the store's own.
 */
export class PoolCopy<Row extends CopiedRow> {
  readonly pools = new Map<string, CopiedPool<Row>>();
  private pending = new Map<Row, PendingCounts>();
  /** Each key's current hour by its row (no string built per release); hours a key has left, in `usagePast`. */
  private usage = new Map<Row, PendingUsage>();
  private usagePast: PendingUsage[] = [];

  constructor(readonly random: () => number) {}

  /** Replaces a pool's copy with `rows`, carrying onto them what memory held of the keys in the copy before. */
  fill(name: string, rotation: PoolSettings["rotation"], rows: Iterable<Row>): CopiedPool<Row> {
    const before = this.pools.get(name);
    const pool: CopiedPool<Row> = { name, rotation, rows: new Map(), order: new RankOrder() };
    const seen = new Map<string, string>();
    for (const row of rows) {
      shareStrings(row, name, seen);
      const old = before?.rows.get(row.id);
      if (old) this.carryPending(old, row);
      pool.rows.set(row.id, row);
      if (row.takeable) pool.order.add(row);
    }
    this.pools.set(name, pool);
    return pool;
  }

  /** A key read anew (`fresh`; null: it is gone): its row replaces the copy's, with this process's unwritten counts on top. */
  replace(poolName: string, id: string, fresh: Row | null): void {
    const pool = this.pools.get(poolName);
    if (!pool) return;
    const old = pool.rows.get(id);
    if (old) pool.order.remove(old);
    if (fresh === null) {
      pool.rows.delete(id);
      if (old) this.pending.delete(old);
      return;
    }
    shareStrings(fresh, pool.name, new Map());
    if (old) this.carryPending(old, fresh);
    pool.rows.set(id, fresh);
    if (fresh.takeable) pool.order.add(fresh);
  }

  /** Whether the key is takeable and ready now, as far as its own columns say. */
  ready(row: Row, now: number): boolean {
    return isReady(candidateOf(row), now);
  }

  /**
   * Takes `row` in memory: false, changing nothing, when the take must be arbitrated by the store (a
   * lease cap, request limits, a rest after each take).
   */
  take(pool: CopiedPool<Row>, row: Row, settings: PoolSettings, now: number): boolean {
    const facts = factsOf(row, settings);
    if (takeNeedsArbitration(facts, settings)) return false;
    const plan = planTake(facts, settings, this.rankContext(settings, pool, now));
    this.rerank(pool, row, plan.rank);
    row.in_flight = plan.inFlight;
    row.requests++;
    row.last_used = now;
    const counts = this.pendingOf(row);
    counts.inFlight++;
    counts.requests++;
    counts.lastUsed = now;
    counts.rank = true;
    return true;
  }

  /**
   * Applies a planned release to the copy; call it only when `changesOnlyCounts` holds (the store must
   * decide everything else, so every process sees it at its next take).
   */
  release(pool: CopiedPool<Row>, row: Row, plan: ModelReleasePlan, outcome: Outcome, now: number): void {
    this.rerank(pool, row, plan.rank);
    row.in_flight = plan.inFlight;
    row.last_used = Math.max(row.last_used ?? 0, now);
    const counts = this.pendingOf(row);
    counts.inFlight--;
    counts.lastUsed = now;
    counts.rank = true;
    if (plan.confirmsHealth && plan.event) {
      row.health = plan.condition.health;
      row.reason = plan.condition.reason;
      counts.confirmed = { at: now, pool: row.pool, key: row.id, ...plan.event };
    }
    if (plan.penalised) {
      row.errors++;
      counts.errors++;
    }
    if (plan.budget) {
      row.remaining_requests = plan.budget.requests ?? row.remaining_requests;
      row.remaining_tokens = plan.budget.tokens ?? row.remaining_tokens;
      row.remaining_reset_at = fullAt(plan.budget) ?? row.remaining_reset_at;
      counts.budget = true;
    }
    if (plan.windows) {
      row.minute_start = plan.windows.minuteStart;
      row.minute_requests = plan.windows.minuteRequests;
      row.minute_tokens = plan.windows.minuteTokens;
      row.day_start = plan.windows.dayStart;
      row.day_requests = plan.windows.dayRequests;
      counts.windows = true;
    }
    this.countUsage(row, now, {
      ok: outcome.ok,
      failure: plan.failureClass,
      tokens: outcome.usage,
      costMicros: plan.costMicros,
    });
  }

  /**
   * A lease of the key lapsed without a release: its slot is free again. `inStore`: the store's count of
   * leases in flight is lowered too, by the next flush (false where the store reclaims the lease itself).
   */
  lapse(pool: CopiedPool<Row>, row: Row, inStore = true): void {
    row.in_flight = Math.max(0, row.in_flight - 1);
    const counts = this.pendingOf(row);
    if (inStore) counts.inFlight--;
    if (row.takeable && pool.rotation === "least_busy") {
      this.rerank(pool, row, busyRank(row.in_flight, row.last_used ?? 0));
      counts.rank = true;
    }
  }

  /** The counts of a key, to be corrected (a lease another process reclaimed first). */
  pendingOf(row: Row): PendingCounts {
    let counts = this.pending.get(row);
    if (!counts) {
      counts = { inFlight: 0, requests: 0, errors: 0, lastUsed: 0, rank: false, budget: false, windows: false };
      this.pending.set(row, counts);
    }
    return counts;
  }

  /** Whether counts or usage wait to be written. */
  get hasPending(): boolean {
    return this.pending.size > 0 || this.usage.size > 0 || this.usagePast.length > 0;
  }

  /** Takes out everything pending, for a flush: from now on the flush owns it. */
  drain(): DrainedCounts<Row> {
    const keys = [...this.pending].map(([row, counts]) => ({ row, counts }));
    const usage = [...this.usagePast, ...this.usage.values()];
    this.pending = new Map();
    this.usage = new Map();
    this.usagePast = [];
    return { keys, usage };
  }

  /** A flush that failed: what it took out is pending again, to be written by the next. */
  putBack(drained: DrainedCounts<Row>): void {
    for (const { row, counts } of drained.keys) addPending(this.pendingOf(row), counts);
    this.usagePast.push(...drained.usage);
  }

  /** The rank context the planners need, from the copy's order. */
  rankContext(settings: PoolSettings, pool: CopiedPool<Row>, now: number): RankContext {
    const top = pool.order.last();
    return {
      now,
      random: this.random,
      maxRank: needsMaxRank(settings.rotation) ? (top?.rank ?? 0) : 0,
      virtualTime: settings.rotation === "weighted" ? virtualTimeOf(top ?? null) : 0,
    };
  }

  /** The decision context of a release decided on the copy. */
  decisionContext(settings: PoolSettings, pool: CopiedPool<Row>, now: number): DecisionContext {
    return new CopyDecisionContext(this, settings, pool, now);
  }

  private rerank(pool: CopiedPool<Row>, row: Row, rank: number): void {
    if (rank === row.rank) return;
    const inOrder = pool.order.remove(row);
    row.rank = rank;
    if (inOrder) pool.order.add(row);
  }

  private countUsage(row: Row, now: number, entry: UsageEntry): void {
    const hour = hourOf(now);
    let pending = this.usage.get(row);
    if (pending?.hour !== hour) {
      // A row read anew starts an entry of its own for the same hour; the flush adds both to one ledger row.
      if (pending) this.usagePast.push(pending);
      pending = { pool: row.pool, id: row.id, hour, counts: new Array<number>(USAGE_COUNT_COLUMNS.length).fill(0) };
      this.usage.set(row, pending);
    }
    addUsageEntry(pending.counts, entry);
  }

  /** Moves what memory knows of a key and the store does not yet onto its freshly read row. */
  private carryPending(old: Row, fresh: Row): void {
    const counts = this.pending.get(old);
    if (!counts) return;
    this.pending.delete(old);
    this.pending.set(fresh, counts);
    fresh.in_flight = Math.max(0, fresh.in_flight + counts.inFlight);
    fresh.requests += counts.requests;
    fresh.errors += counts.errors;
    if (counts.lastUsed > (fresh.last_used ?? 0)) fresh.last_used = counts.lastUsed;
    if (counts.rank) fresh.rank = old.rank;
    if (counts.confirmed && fresh.health === "unknown") {
      fresh.health = old.health;
      fresh.reason = old.reason;
    }
    if (counts.budget) {
      fresh.remaining_requests = old.remaining_requests;
      fresh.remaining_tokens = old.remaining_tokens;
      fresh.remaining_reset_at = old.remaining_reset_at;
    }
    if (counts.windows) {
      fresh.minute_start = old.minute_start;
      fresh.minute_requests = old.minute_requests;
      fresh.minute_tokens = old.minute_tokens;
      fresh.day_start = old.day_start;
      fresh.day_requests = old.day_requests;
    }
  }
}

/** A release's context on the copy: an object with a method, where a closure would cost two more per release. */
class CopyDecisionContext<Row extends CopiedRow> implements DecisionContext {
  readonly random: () => number;

  constructor(
    private readonly copy: PoolCopy<Row>,
    private readonly settings: PoolSettings,
    private readonly pool: CopiedPool<Row>,
    readonly now: number,
  ) {
    this.random = copy.random;
  }

  initialRank(): number {
    return initialRank(this.settings.rotation, this.copy.rankContext(this.settings, this.pool, this.now));
  }
}

/** Adds `from`'s counts to `to` (one key's counts kept on two of its rows, or put back after a failed flush). */
export function addPending(to: PendingCounts, from: PendingCounts): void {
  to.inFlight += from.inFlight;
  to.requests += from.requests;
  to.errors += from.errors;
  to.lastUsed = Math.max(to.lastUsed, from.lastUsed);
  to.rank ||= from.rank;
  to.budget ||= from.budget;
  to.windows ||= from.windows;
  to.confirmed ??= from.confirmed;
}

/**
 * Whether a release plan changes only what each process keeps for itself (counters, rank, a first
 * success, the upstream's budget, windows of a key without tpm) — the copy may apply it. Anything else
 * another process must see at its next take: the store decides it.
 */
export function changesOnlyCounts(plan: ModelReleasePlan, facts: KeyFacts, settings: PoolSettings): boolean {
  return !(
    (plan.changesCondition && !plan.confirmsHealth) ||
    (plan.event !== undefined && !plan.confirmsHealth) ||
    plan.groupRest !== undefined ||
    plan.reviveCheckAt !== undefined ||
    // Tokens counted against tpm decide the key's next takes everywhere.
    (plan.windows !== undefined && facts.limits.tpm !== undefined) ||
    plan.modelDenied === true ||
    // Spend under a cap is counted in the store, where every process adds to the same total.
    (plan.spend !== undefined && (hasCaps(settings.budget) || hasCaps(facts.budget)))
  );
}

/** The values of a key's few-valued columns that every store writes, each held once. */
const WORDS = new Map<string, string>([...KEY_STATES, ...FAILURE_CLASSES, "file", "api", "env"].map((w) => [w, w]));

function shared<T extends string | null>(value: T, seen: Map<string, string>): T {
  if (value === null) return value;
  const held = WORDS.get(value) ?? seen.get(value);
  if (held !== undefined) return held as T;
  seen.set(value, value);
  return value;
}

/**
 * Points a freshly read row's few-valued strings (its pool, health, origin, class, group, models, reason)
 * at one string per value: the store hands each row fresh strings, and a 100,000-key pool would keep
 * hundreds of thousands of copies of a handful of words. `seen`: the other values met in this read.
 */
function shareStrings(row: CopiedRow, pool: string, seen: Map<string, string>): void {
  row.pool = pool;
  row.health = shared(row.health, seen);
  row.origin = shared(row.origin, seen);
  row.fail_class = shared(row.fail_class, seen);
  row.key_group = shared(row.key_group, seen);
  row.models = shared(row.models, seen);
  row.reason = shared(row.reason, seen);
}

/** A row in chooseKey's words. */
function candidateOf(row: CopiedRow) {
  return {
    id: row.id,
    rank: row.rank,
    takeable: Boolean(row.takeable),
    readyAt: row.ready_at,
    inFlight: row.in_flight,
    maxConcurrency: row.max_concurrency,
  };
}
