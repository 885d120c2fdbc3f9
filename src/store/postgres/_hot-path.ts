import type { SQL } from "bun";
import type { Clock } from "../../pool/clock";
import { hasCaps } from "../../pool/budget";
import { type KeyState, type Outcome, stateOf } from "../../pool/key-state";
import { planModelRelease } from "../../pool/plan-model";
import { takeNeedsArbitration } from "../../pool/plan-take";
import { pickStart } from "../../pool/rotation";
import { MAX_EVENTS } from "../event-log";
import { factsOf } from "../key-columns";
import { NO_MODELS } from "../model-columns";
import {
  type DrainedCounts,
  type PendingCounts,
  type PendingUsage,
  PoolCopy,
  addPending,
  changesOnlyCounts,
} from "../pool-copy";
import type { Lease, PoolSettings } from "../types";
import { USAGE_COUNT_COLUMNS } from "../usage-entry";
import { isRetryable } from "./_connection";
import type { KeyRow } from "./_key-row";
import { newLeaseId } from "../lease-id";

/**
 * Counters, ranks and leases reach the database at most this long after the take or release that
 * changed them (the issue allows a second; a shorter wait keeps each flush small).
 */
export const FLUSH_EVERY_MS = 200;

/** Looks under way at once: a take waits about one round trip, not one and a half (see look). */
const LOOKS_IN_FLIGHT = 2;
const FLUSH_TRIES = 3;

/** A lease handed out in memory; `stored` once a flush sent its row. */
interface HotLease {
  pool: string;
  id: string;
  takenAt: number;
  expiresAt: number;
  stored: boolean;
}

/** What a look answers (see keypool_look in migration 6): the log's state, and the keys changed (row null: gone). */
interface LookRow {
  log_version: number;
  log_first: number | null;
  changed: Array<{ pool: string; id: string; row: KeyRow | null }> | null;
}

/** Everything one flush writes, taken out of memory when it is sent (and put back if it fails). */
interface FlushBatch {
  counts: DrainedCounts<KeyRow>;
  leases: Array<[string, HotLease]>;
}

/**
 * The PostgreSQL store's in-memory hot path, the same idea as SQLite's (../sqlite/_hot-path.ts):
 * a take of a key without a lease cap, request limits or a rest after each take, and a release that
 * changes nothing other instances decide on, are decided on this instance's copy of the pool, and
 * their counters, ranks, leases and usage reach the database in one statement every FLUSH_EVERY_MS.
 * A lease taken and given back in between never reaches the database at all.
 *
 * The copy stays current strictly: every take waits for a look at the key log (migration 6) that was
 * sent after the take arrived, so it sees every change committed before it — a cooldown, quarantine
 * or operator's change made by any instance. Looks are shared: at most one is in flight, and every
 * take that arrived while it was under way shares the next, so 32 callers cost one round trip, not 32.
 * A look is one statement: the version, and the rows of the keys logged since this copy's version.
 *
 * Everything else — exclusive keys, limits, sessions, models, spend caps, failures, checks, operators'
 * changes — goes through the store's SQL as before; a release the copy does not decide is flushed first.
 */
export class HotPath {
  private readonly copy: PoolCopy<KeyRow>;
  /** Pools to read whole at the next look (first use, or after the log was pruned past this copy). */
  private readonly wanted = new Map<string, PoolSettings["rotation"]>();
  private readonly leases = new Map<string, HotLease>();
  /** The last log version this copy has read; -1 before the first look. */
  private version = -1;
  /** The look not sent yet, which every take arriving now shares. */
  private nextLook: Promise<void> | undefined;
  /** The last look sent, resolved once applied. */
  private applied: Promise<void> = Promise.resolve();
  /** Looks sent and not yet applied, oldest first. */
  private readonly underWay: Array<Promise<void>> = [];
  private flushing: Promise<void> | undefined;
  private flushTimer: Timer | undefined;
  private nextLapseCheck = 0;
  private closed = false;

  constructor(
    private readonly sql: SQL,
    private readonly clock: Clock,
    private readonly random: () => number,
    /** Runs a call to the database with the store's deadline (withDeadline): once per look or flush, not per take. */
    private readonly guard: <T>(op: () => Promise<T>) => Promise<T>,
    /** A key's token as stored (sealed when the store encrypts) to the token a lease hands out. */
    private readonly reveal: (sealed: string) => string,
  ) {
    this.copy = new PoolCopy(random);
  }

  /**
   * A take decided in memory, or undefined when the store must decide it in SQL (nothing ready here,
   * or the key it would hand out is arbitrated there).
   */
  async take(settings: PoolSettings, exclude: readonly string[]): Promise<Lease | undefined> {
    if (!this.serves(settings)) return undefined;
    if (!this.copy.pools.has(settings.name)) this.wanted.set(settings.name, settings.rotation);
    await this.look();
    const pool = this.copy.pools.get(settings.name);
    if (!pool) return undefined;
    const now = this.clock.now();
    if (now >= this.nextLapseCheck) this.lapseLeases(now);
    const row = pool.order.find(
      pickStart(settings.rotation, this.random),
      (key) => this.copy.ready(key, now) && (exclude.length === 0 || !exclude.includes(key.id)),
    );
    if (!row || !this.copy.take(pool, row, settings, now)) return undefined;
    const leaseId = newLeaseId();
    const expiresAt = now + settings.leaseTtlSec * 1000;
    this.leases.set(leaseId, { pool: settings.name, id: row.id, takenAt: now, expiresAt, stored: false });
    this.scheduleFlush();
    return { lease: leaseId, pool: settings.name, id: row.id, token: this.reveal(row.token), takenAt: now, expiresAt };
  }

  /**
   * Whether takes of the pool may be decided here. A pool whose every key is arbitrated in SQL (a lease
   * cap, request limits, a rest after each take), or whose spend is capped, skips the look: its takes
   * keep their round trips.
   */
  serves(settings: PoolSettings): boolean {
    if (this.closed || hasCaps(settings.budget) || settings.maxConcurrency !== undefined) return false;
    return !takeNeedsArbitration({ maxConcurrency: null, limits: settings }, settings);
  }

  /**
   * A release decided in memory: a lease this copy handed out and never wrote, given back with an
   * outcome that changes nothing other instances decide on. Undefined otherwise: the store decides it
   * (after `settle`, which writes the lease if only memory has it).
   */
  release(
    leaseId: string,
    outcome: Outcome,
    settingsOf: (pool: string) => PoolSettings,
  ): { pool: string; id: string; state: KeyState; reason: string | null } | undefined {
    const lease = this.leases.get(leaseId);
    // A written lease may have been given back through another instance since: the database decides.
    if (!lease || lease.stored) return undefined;
    const now = this.clock.now();
    if (lease.expiresAt <= now) return undefined;
    // Models, sessions and their pairs are decided in SQL, like every release this copy cannot settle alone.
    if (outcome.model !== undefined || outcome.session !== undefined) return undefined;
    const pool = this.copy.pools.get(lease.pool);
    const row = pool?.rows.get(lease.id);
    if (!pool || !row) return undefined;
    const settings = settingsOf(lease.pool);
    const facts = factsOf(row, settings, NO_MODELS);
    const plan = planModelRelease(
      facts,
      undefined,
      outcome,
      settings,
      this.copy.decisionContext(settings, pool, now),
      1,
    );
    // Anything another instance must see at its next take goes through the database's transaction.
    if (!changesOnlyCounts(plan, facts, settings)) return undefined;
    this.leases.delete(leaseId);
    this.copy.release(pool, row, plan, outcome, now);
    this.scheduleFlush();
    return { pool: row.pool, id: row.id, state: stateOf(plan.condition, now), reason: plan.condition.reason };
  }

  /** Whether this copy handed the lease out and has not seen it back. */
  holds(leaseId: string): boolean {
    return this.leases.has(leaseId);
  }

  /**
   * The store settled the lease in SQL (after `settle`, so its row was written): the database gave its
   * slot back there, and only the copy's count of leases in flight is left to lower.
   */
  forgetLease(leaseId: string): void {
    const lease = this.leases.get(leaseId);
    if (!lease) return;
    this.leases.delete(leaseId);
    const row = this.copy.pools.get(lease.pool)?.rows.get(lease.id);
    if (row) row.in_flight = Math.max(0, row.in_flight - 1);
  }

  /** Forgets every copy (the pools were re-declared): each is read whole when next used. */
  reset(): void {
    this.copy.pools.clear();
    this.wanted.clear();
  }

  /**
   * Writes what only memory knows, now; resolves when the database has it. A flush under way is
   * waited for, then whatever came after it is written too.
   */
  async settle(): Promise<void> {
    this.lapseLeases(this.clock.now());
    while (this.flushing) await this.flushing.catch(() => {});
    if (!this.dirty) return;
    await this.flush();
  }

  /** Stops the flush timer; `settle` first to write what memory holds (kill -9 skips both). */
  close(): void {
    this.closed = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
  }

  /** Whether anything waits to be written, or is being written. */
  get unsettled(): boolean {
    return this.flushing !== undefined || this.dirty;
  }

  private get dirty(): boolean {
    if (this.copy.hasPending) return true;
    for (const lease of this.leases.values()) if (!lease.stored) return true;
    return false;
  }

  // ---- the look at the key log ---------------------------------------------------------------

  /**
   * Resolves once a look sent after this call has been applied (see the class comment). The look is
   * sent on the next turn of the event loop: every take that arrives before then shares it (a batch
   * of callers woken by one look all ask again within one turn). Up to LOOKS_IN_FLIGHT are under way
   * at once; their answers are applied in the order they were sent, so the copy never goes back.
   */
  private look(): Promise<void> {
    if (this.nextLook) return this.nextLook;
    const queued = new Promise<void>((resolve) => setImmediate(resolve)).then(async () => {
      try {
        // A look that failed (the database is unreachable, or did not answer by the deadline) fails the
        // takes waiting behind it too: none waits longer than one deadline from its arrival.
        while (this.underWay.length >= LOOKS_IN_FLIGHT) await this.underWay[0];
      } finally {
        // Takes arriving from now on were not in time for this look: they wait for the next.
        this.nextLook = undefined;
      }
      return this.send();
    });
    this.nextLook = queued;
    return queued;
  }

  private send(): Promise<void> {
    const applied = this.lookAfter(this.applied);
    this.applied = applied;
    this.underWay.push(applied);
    const forget = () => {
      this.underWay.splice(this.underWay.indexOf(applied), 1);
    };
    applied.then(forget, forget);
    return applied;
  }

  /** Sends a look now and applies its answer once `previous` (the look sent before it) has been. */
  private async lookAfter(previous: Promise<void>): Promise<void> {
    // A pool read whole must not be overwritten by an older look applied after it: loads go alone.
    if (this.wanted.size > 0) {
      await previous.then(noop, noop);
      await this.guard(() => this.load([...this.wanted]));
    }
    const answer = this.guard(
      () => this.sql.unsafe(LOOK, [this.version, [...this.copy.pools.keys()]]) as Promise<LookRow[]>,
    );
    const [head] = await answer;
    await previous.then(noop, noop);
    await this.apply(head!);
  }

  private async apply(head: LookRow): Promise<void> {
    if (head.log_version <= this.version) return;
    const first = head.log_first;
    if (first === null || first > this.version + 1) {
      // The log was pruned past what this copy read: read its pools whole.
      const pools = [...this.copy.pools].map(([name, pool]): [string, PoolSettings["rotation"]] => [
        name,
        pool.rotation,
      ]);
      if (pools.length > 0) await this.guard(() => this.load(pools));
    } else {
      for (const { pool, id, row } of head.changed ?? []) this.copy.replace(pool, id, row);
    }
    this.version = head.log_version;
  }

  /** Reads pools whole, with this instance's unwritten counts carried onto their fresh rows. */
  private async load(pools: Array<[string, PoolSettings["rotation"]]>): Promise<void> {
    const names = pools.map(([name]) => name);
    const rows = (await this.sql.unsafe(LOAD, [names])) as Array<KeyRow & { log_version: number }>;
    // The first look reads the log from where these rows stand.
    if (this.version < 0) this.version = rows[0]?.log_version ?? 0;
    for (const [name, rotation] of pools) {
      this.wanted.delete(name);
      const fresh = rows.filter((row) => row.pool === name).map(({ log_version: _, ...row }) => row as KeyRow);
      this.copy.fill(name, rotation, fresh);
    }
  }

  // ---- the flush -----------------------------------------------------------------------------

  private scheduleFlush(): void {
    if (this.flushTimer || this.closed) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      // A failed flush keeps its batch in memory: the next one writes it (see flush).
      this.settle().catch(() => this.scheduleFlush());
    }, FLUSH_EVERY_MS);
    this.flushTimer.unref?.();
  }

  private flush(): Promise<void> {
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    const batch = this.takeBatch();
    const sent = this.guard(() => this.write(batch)).catch((error: unknown) => {
      this.putBack(batch);
      throw error;
    });
    this.flushing = sent;
    const done = () => {
      if (this.flushing === sent) this.flushing = undefined;
    };
    sent.then(done, done);
    return sent;
  }

  private takeBatch(): FlushBatch {
    const leases: Array<[string, HotLease]> = [];
    for (const entry of this.leases) {
      if (entry[1].stored) continue;
      entry[1].stored = true;
      leases.push(entry);
    }
    return { counts: this.copy.drain(), leases };
  }

  /** A flush that failed: its counts are added back, to be written by the next. */
  private putBack(batch: FlushBatch): void {
    for (const [, lease] of batch.leases) lease.stored = false;
    this.copy.putBack(batch.counts);
  }

  /**
   * One entry per key: a key read again meanwhile has counts on its old row and its new one, added up
   * here (PostgreSQL's UPDATE … FROM applies only one of several rows joined to a key).
   */
  private perKey(drained: DrainedCounts<KeyRow>): Array<{ row: KeyRow; counts: PendingCounts }> {
    const keys = new Map<string, { row: KeyRow; counts: PendingCounts }>();
    for (const { row, counts } of drained.keys) {
      const slot = `${row.pool}\n${row.id}`;
      const seen = keys.get(slot);
      if (!seen) {
        keys.set(slot, { row, counts: { ...counts } });
        continue;
      }
      addPending(seen.counts, counts);
      // The rank, budget and windows to write are those of the row the copy holds now.
      if (this.copy.pools.get(row.pool)?.rows.get(row.id) === row) seen.row = row;
    }
    return [...keys.values()];
  }

  private async write(batch: FlushBatch): Promise<void> {
    const perKey = this.perKey(batch.counts);
    const keys = perKey
      .map(({ row, counts: c }) => {
        return {
          pool: row.pool,
          id: row.id,
          rank: c.rank ? row.rank : null,
          in_flight: c.inFlight,
          requests: c.requests,
          errors: c.errors,
          last_used: c.lastUsed,
          budget: c.budget,
          remaining_requests: row.remaining_requests,
          remaining_tokens: row.remaining_tokens,
          remaining_reset_at: row.remaining_reset_at,
          windows: c.windows,
          minute_start: row.minute_start,
          minute_requests: row.minute_requests,
          minute_tokens: row.minute_tokens,
          day_start: row.day_start,
          day_requests: row.day_requests,
        };
      })
      // In one order on every instance: two flushes of the same keys wait for each other instead of deadlocking.
      .sort((a, b) => (a.pool === b.pool ? (a.id < b.id ? -1 : 1) : a.pool < b.pool ? -1 : 1));
    const leases = batch.leases.map(([lease, l]) => ({
      lease,
      pool: l.pool,
      key_id: l.id,
      taken_at: l.takenAt,
      expires_at: l.expiresAt,
    }));
    // One entry per key and hour, for the same reason as perKey (ON CONFLICT updates a row once per statement).
    const hours = new Map<string, PendingUsage>();
    for (const u of batch.counts.usage) {
      const slot = `${u.pool}\n${u.id}\n${u.hour}`;
      const seen = hours.get(slot);
      if (!seen) hours.set(slot, { ...u, counts: [...u.counts] });
      else for (let i = 0; i < u.counts.length; i++) seen.counts[i]! += u.counts[i]!;
    }
    const usage = [...hours.values()].map((u) => [u.pool, u.id, u.hour, ...u.counts]);
    const confirmed = perKey.flatMap(({ row, counts: { confirmed: e } }) =>
      e === undefined
        ? []
        : [
            {
              ...{ pool: e.pool, key_id: e.key, at: e.at, from_state: e.from, to_state: e.to, class: e.class },
              ...{ event_reason: e.reason, until: e.until, reason: row.reason },
            },
          ],
    );
    // First, as it may be sent again after a failure: it changes only keys still unknown.
    if (confirmed.length > 0) await this.sql.unsafe(CONFIRM, [JSON.stringify(confirmed), MAX_EVENTS]);
    const params = [JSON.stringify(keys), JSON.stringify(leases), JSON.stringify(usage)];
    for (let attempt = 1; ; attempt++) {
      try {
        await this.sql.unsafe(FLUSH, params);
        break;
      } catch (error) {
        if (!isRetryable(error) || attempt >= FLUSH_TRIES) throw error;
      }
    }
  }

  // ---- memory --------------------------------------------------------------------------------

  /**
   * Leases never given back within their TTL free their slot. One never written is settled here; a
   * written one is the database's: whichever instance reclaims it first gives its slot back there.
   */
  private lapseLeases(now: number): void {
    this.nextLapseCheck = now + 1000;
    for (const [leaseId, lease] of this.leases) {
      if (lease.expiresAt > now) continue;
      this.leases.delete(leaseId);
      const pool = this.copy.pools.get(lease.pool);
      const row = pool?.rows.get(lease.id);
      if (pool && row) this.copy.lapse(pool, row, !lease.stored);
    }
    if (this.dirty) this.scheduleFlush();
  }
}

function noop(): void {}

/**
 * Keys' first successes (unknown → live) and their events, for keys nothing else has moved out of
 * unknown since (a quarantine another instance wrote stands). Logged by the trigger: every copy reads
 * the key again. The event log is pruned back to `$2` entries.
 */
const CONFIRM = `
  WITH c AS (
    SELECT * FROM json_to_recordset($1::text::json)
      AS c(pool text, key_id text, at float8, from_state text, to_state text, class text, event_reason text,
           until float8, reason text)
  ), confirmed AS (
    UPDATE keypool_keys k SET health = 'live', reason = c.reason
    FROM c WHERE k.pool = c.pool AND k.id = c.key_id AND k.health = 'unknown'
    RETURNING c.*
  ), logged AS (
    INSERT INTO keypool_events (at, pool, key_id, from_state, to_state, class, reason, until)
    SELECT at, pool, key_id, from_state, to_state, class, event_reason, until FROM confirmed
    RETURNING seq
  )
  DELETE FROM keypool_events WHERE seq <= (SELECT max(seq) FROM logged) - $2::int`;

/** The look (keypool_look in migration 6): one statement, one snapshot. */
const LOOK = `SELECT * FROM keypool_look($1::bigint, $2::text[])`;

/** Whole pools, with the log's version in the same snapshot (one row with no key when they are empty). */
const LOAD = `
  SELECT s.v::float8 AS log_version, k.*
  FROM keypool_version s LEFT JOIN keypool_keys k ON k.pool = ANY($1::text[])`;

const USAGE_ADDS = USAGE_COUNT_COLUMNS.map((c) => `${c} = keypool_usage_hourly.${c} + excluded.${c}`).join(", ");

/**
 * One flush: the leases only memory had, each key's counters added (and its rank and budget set where
 * memory's are newer), usage added to the hourly ledger. Only counters: nothing here is logged.
 * Leases of a key removed meanwhile are not written.
 */
const FLUSH = `
  WITH counts AS (
    SELECT * FROM json_to_recordset($1::text::json) AS c(pool text, id text, rank float8, in_flight int,
      requests float8,
      errors float8, last_used float8, budget boolean, remaining_requests float8, remaining_tokens float8,
      remaining_reset_at float8, windows boolean, minute_start float8, minute_requests float8, minute_tokens float8,
      day_start float8, day_requests float8)
  ), added AS (
    INSERT INTO keypool_leases (lease, pool, key_id, taken_at, expires_at)
    SELECT l.lease, l.pool, l.key_id, l.taken_at, l.expires_at
    FROM json_to_recordset($2::text::json) AS l(lease text, pool text, key_id text, taken_at float8, expires_at float8)
    WHERE EXISTS (SELECT 1 FROM keypool_keys k WHERE k.pool = l.pool AND k.id = l.key_id)
    ON CONFLICT (lease) DO NOTHING
  ), usage AS (
    INSERT INTO keypool_usage_hourly (pool, key_id, hour, ${USAGE_COUNT_COLUMNS.join(", ")})
    SELECT u->>0, u->>1, (u->>2)::float8, ${USAGE_COUNT_COLUMNS.map((_, i) => `(u->>${i + 3})::float8`).join(", ")}
    FROM json_array_elements($3::text::json) u
    ON CONFLICT (pool, key_id, hour) DO UPDATE SET ${USAGE_ADDS}
  )
  UPDATE keypool_keys k SET
    rank = COALESCE(c.rank, k.rank),
    in_flight = GREATEST(0, k.in_flight + c.in_flight),
    requests = k.requests + c.requests,
    errors = k.errors + c.errors,
    last_used = GREATEST(COALESCE(k.last_used, 0), c.last_used),
    remaining_requests = CASE WHEN c.budget THEN c.remaining_requests ELSE k.remaining_requests END,
    remaining_tokens = CASE WHEN c.budget THEN c.remaining_tokens ELSE k.remaining_tokens END,
    remaining_reset_at = CASE WHEN c.budget THEN c.remaining_reset_at ELSE k.remaining_reset_at END,
    minute_start = CASE WHEN c.windows THEN c.minute_start ELSE k.minute_start END,
    minute_requests = CASE WHEN c.windows THEN c.minute_requests ELSE k.minute_requests END,
    minute_tokens = CASE WHEN c.windows THEN c.minute_tokens ELSE k.minute_tokens END,
    day_start = CASE WHEN c.windows THEN c.day_start ELSE k.day_start END,
    day_requests = CASE WHEN c.windows THEN c.day_requests ELSE k.day_requests END
  FROM counts c WHERE k.pool = c.pool AND k.id = c.id`;
