import type { Database, SQLQueryBindings } from "bun:sqlite";
import type { LadderPosition } from "../../pool/key-state";
import type { UsageWindows } from "../../pool/limits";
import { type RateLimitBudget, fullAt } from "../../pool/rate-limit-headers";
import { type EventRow, MAX_EVENTS, eventOfRow } from "../event-log";
import type { EventQuery, KeyEvent } from "../types";

/**
 * The failure policy's own statements: quota groups, ladders, rate-limit budgets, limit windows and
 * the event log. Every method runs inside the caller's transaction, so a failure, its group's rest
 * and their events commit together.
 */
export class PolicyWrites {
  private readonly sql: ReturnType<typeof prepare>;

  constructor(db: Database) {
    this.sql = prepare(db);
  }

  setGroup(pool: string, id: string, group: string | undefined): void {
    this.sql.setGroup.run(group ?? null, pool, id);
  }

  /** A new token is a new credential: its ladder, budget and windows start over. */
  forgetLearned(pool: string, id: string): void {
    this.sql.forgetLearned.run(pool, id);
  }

  writeLadder(pool: string, id: string, ladder: LadderPosition): void {
    this.sql.writeLadder.run(ladder.failClass, ladder.rung, ladder.failUntil, pool, id);
  }

  writeWindows(pool: string, id: string, w: UsageWindows): void {
    this.sql.writeWindows.run(w.minuteStart, w.minuteRequests, w.minuteTokens, w.dayStart, w.dayRequests, pool, id);
  }

  /** Stores what the upstream said is left; what it did not mention is kept from before. */
  writeBudget(pool: string, id: string, budget: RateLimitBudget): void {
    this.sql.writeBudget.run(budget.requests ?? null, budget.tokens ?? null, fullAt(budget) ?? null, pool, id);
  }

  /** least_busy: re-ranks a key whose in-flight count changed outside a take or release (a lapsed lease). */
  rankByBusy(pool: string, id: string, rankOf: (inFlight: number, lastUsed: number) => number): void {
    const row = this.sql.busy.get(pool, id) as { in_flight: number; last_used: number | null } | null;
    if (row) this.sql.setRank.run(rankOf(row.in_flight, row.last_used ?? 0), pool, id);
  }

  /** The other keys of `group` in `pool`. */
  groupMembers<Row>(pool: string, group: string, exceptId: string): Row[] {
    return this.sql.groupMembers.all(pool, group, exceptId) as Row[];
  }

  /** Appends a transition and prunes the log back to MAX_EVENTS rows. */
  event(e: KeyEvent): void {
    const { lastInsertRowid } = this.sql.insertEvent.run(...eventParams(e));
    this.sql.pruneEvents.run(Number(lastInsertRowid) - MAX_EVENTS);
  }

  events(query: EventQuery): KeyEvent[] {
    const args = [query.pool ?? null, query.key ?? null, query.since ?? null, query.limit] as const;
    const rows = (
      query.since === undefined ? this.sql.latestEvents.all(...args).reverse() : this.sql.eventsSince.all(...args)
    ) as EventRow[];
    return rows.map(eventOfRow);
  }
}

/** The limit windows of a key: minute start, requests, tokens, day start, requests; then pool and id. */
export const WRITE_WINDOWS_SQL = `UPDATE keys SET minute_start = ?1, minute_requests = ?2, minute_tokens = ?3,
                                   day_start = ?4, day_requests = ?5
                                 WHERE pool = ?6 AND id = ?7`;

/** One event, with the values of eventParams. */
export const INSERT_EVENT_SQL = `INSERT INTO events (at, pool, key_id, from_state, to_state, class, reason, until, model, alert)
                                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)`;

/** Keeps the newest MAX_EVENTS events (?1), for writes that do not know the last event's number. */
export const PRUNE_EVENTS_SQL = `DELETE FROM events WHERE seq <= (SELECT MAX(seq) FROM events) - ?1`;

/** An event as the values of INSERT_EVENT_SQL. */
export function eventParams(e: KeyEvent): SQLQueryBindings[] {
  return [e.at, e.pool, e.key, e.from, e.to, e.class, e.reason, e.until, e.model ?? null, e.alert ?? null];
}

export { MAX_EVENTS };

function prepare(db: Database) {
  const filter = `(?1 IS NULL OR pool = ?1) AND (?2 IS NULL OR key_id = ?2)`;
  return {
    setGroup: db.query(`UPDATE keys SET key_group = ?1 WHERE pool = ?2 AND id = ?3`),
    forgetLearned: db.query(`UPDATE keys SET fail_class = NULL, rung = 0, fail_until = 0, remaining_requests = NULL,
                               remaining_tokens = NULL, remaining_reset_at = NULL, minute_start = 0, minute_requests = 0,
                               minute_tokens = 0, day_start = 0, day_requests = 0
                             WHERE pool = ?1 AND id = ?2`),
    writeLadder: db.query(`UPDATE keys SET fail_class = ?1, rung = ?2, fail_until = ?3 WHERE pool = ?4 AND id = ?5`),
    writeWindows: db.query(WRITE_WINDOWS_SQL),
    writeBudget: db.query(`UPDATE keys SET remaining_requests = COALESCE(?1, remaining_requests),
                             remaining_tokens = COALESCE(?2, remaining_tokens), remaining_reset_at = COALESCE(?3, remaining_reset_at)
                           WHERE pool = ?4 AND id = ?5`),
    busy: db.query(`SELECT in_flight, last_used FROM keys WHERE pool = ?1 AND id = ?2`),
    setRank: db.query(`UPDATE keys SET rank = ?1 WHERE pool = ?2 AND id = ?3`),
    groupMembers: db.query(`SELECT * FROM keys WHERE pool = ?1 AND key_group = ?2 AND id != ?3`),
    insertEvent: db.query(INSERT_EVENT_SQL),
    pruneEvents: db.query(`DELETE FROM events WHERE seq <= ?1`),
    latestEvents: db.query(`SELECT * FROM events WHERE ${filter} ORDER BY seq DESC LIMIT ?4`),
    eventsSince: db.query(`SELECT * FROM events WHERE ${filter} AND at > ?3 ORDER BY seq LIMIT ?4`),
  };
}
