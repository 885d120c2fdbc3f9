import type { Database } from "bun:sqlite";
import type { KeyHealth } from "../../pool/key-state";
import type { TokenCounts } from "../../pool/pricing";
import {
  DEFAULT_MAX_SESSIONS,
  DEFAULT_SESSION_TTL_SEC,
  type SessionLookup,
  type SessionUsageRow,
  sessionTokenCounts,
  sessionUsageOf,
} from "../session-rules";
import type { SessionUsage } from "../types";

// Lapsed mappings are swept at most this often per pool; until then the bound and the TTL check keep them harmless.
const SWEEP_EVERY_MS = 60_000;

interface SessionRow {
  key_id: string;
  detour_id: string | null;
  expires_at: number;
}

/**
 * Sticky sessions: which key each session uses, shared by every process on the file. A session
 * keeps its own key while that key is usable; while it is not (resting, at a limit, excluded by a
 * retry) the session detours on another key — the same one each time, while it stays usable — and
 * goes back to its own as soon as it frees up. The mapping moves for good only when the own key is
 * gone or out until a probe or an operator brings it back (quarantined, dead, disabled), or when the
 * session has not used its own key for `ttl`. Every method runs inside the caller's take transaction.
 */
export class SessionMap {
  private readonly sql: ReturnType<typeof prepare>;
  private readonly nextSweepAt = new Map<string, number>();

  constructor(db: Database) {
    this.sql = prepare(db);
  }

  lookup(pool: string, session: string, now: number): SessionLookup {
    const row = this.sql.get.get(pool, session) as SessionRow | null;
    if (!row) return { pool, session, own: null, candidates: [], stored: false };
    const live = row.expires_at > now;
    const own = live && this.canComeBack(pool, row.key_id) ? row.key_id : null;
    // A session that lost its key (or let the mapping lapse) mid-detour settles on the key it was detouring on.
    const candidates = [own, row.detour_id].filter((id): id is string => id !== null);
    return { pool, session, own, candidates, stored: true };
  }

  /** After a take for the session: its own key refreshes the mapping; any other key is a detour, or the new own key. */
  record(lookup: SessionLookup, keyId: string, now: number, limits: { ttlSec?: number; max?: number }): void {
    const expiresAt = now + (limits.ttlSec ?? DEFAULT_SESSION_TTL_SEC) * 1000;
    if (lookup.own === keyId) {
      this.sql.backOnOwn.run(expiresAt, lookup.pool, lookup.session);
    } else if (lookup.own !== null) {
      this.sql.detour.run(keyId, lookup.pool, lookup.session);
    } else if (lookup.stored) {
      this.sql.remap.run(keyId, expiresAt, lookup.pool, lookup.session);
    } else {
      this.sql.insert.run(lookup.pool, lookup.session, keyId, expiresAt);
      this.bound(lookup.pool, now, limits.max ?? DEFAULT_MAX_SESSIONS);
    }
  }

  /** Live sessions per key id of `pool`: what /status shows as sessions held. */
  countsByKey(pool: string, now: number): Map<string, number> {
    const rows = this.sql.countByKey.all(pool, now) as Array<{ key_id: string; n: number }>;
    return new Map(rows.map((r) => [r.key_id, r.n]));
  }

  /** Adds a release's tokens to its session's totals (inside the release's transaction); a session no longer mapped is skipped. */
  addUsage(pool: string, session: string, usage: TokenCounts | undefined): void {
    this.sql.addUsage.run(pool, session, ...sessionTokenCounts(usage));
  }

  /** The pool's live sessions with the most input tokens first. */
  top(pool: string, now: number, limit: number): SessionUsage[] {
    return (this.sql.top.all(pool, now, limit) as SessionUsageRow[]).map(sessionUsageOf);
  }

  forgetPool(pool: string): void {
    this.sql.deletePool.run(pool);
  }

  /** Whether a key may still free up by itself: it exists and is not out until a probe or an operator acts. */
  private canComeBack(pool: string, keyId: string): boolean {
    const key = this.sql.keyHealth.get(pool, keyId) as { health: KeyHealth } | null;
    return key !== null && (key.health === "unknown" || key.health === "live");
  }

  /** Sweeps lapsed mappings now and then, and evicts the oldest beyond `max`; the trigger-kept count makes both cheap. */
  private bound(pool: string, now: number, max: number): void {
    if (now >= (this.nextSweepAt.get(pool) ?? 0)) {
      this.nextSweepAt.set(pool, now + SWEEP_EVERY_MS);
      this.sql.sweep.run(pool, now);
    }
    const count = (this.sql.count.get(pool) as { n: number } | null)?.n ?? 0;
    if (count > max) this.sql.evictOldest.run(pool, count - max);
  }
}

function prepare(db: Database) {
  return {
    get: db.query(`SELECT key_id, detour_id, expires_at FROM sessions WHERE pool = ?1 AND session = ?2`),
    keyHealth: db.query(`SELECT health FROM keys WHERE pool = ?1 AND id = ?2`),
    backOnOwn: db.query(`UPDATE sessions SET detour_id = NULL, expires_at = ?1 WHERE pool = ?2 AND session = ?3`),
    // A detour leaves expires_at alone: a session that never gets its key back lets the mapping lapse.
    detour: db.query(`UPDATE sessions SET detour_id = ?1 WHERE pool = ?2 AND session = ?3`),
    remap: db.query(
      `UPDATE sessions SET key_id = ?1, detour_id = NULL, expires_at = ?2 WHERE pool = ?3 AND session = ?4`,
    ),
    insert: db.query(`INSERT INTO sessions (pool, session, key_id, expires_at) VALUES (?1, ?2, ?3, ?4)`),
    count: db.query(`SELECT n FROM session_counts WHERE pool = ?1`),
    sweep: db.query(`DELETE FROM sessions WHERE pool = ?1 AND expires_at <= ?2`),
    evictOldest: db.query(`DELETE FROM sessions WHERE pool = ?1 AND session IN (
                             SELECT session FROM sessions WHERE pool = ?1 ORDER BY expires_at LIMIT ?2)`),
    countByKey: db.query(
      `SELECT key_id, COUNT(*) AS n FROM sessions WHERE pool = ?1 AND expires_at > ?2 GROUP BY key_id`,
    ),
    deletePool: db.query(`DELETE FROM sessions WHERE pool = ?1`),
    addUsage:
      db.query(`UPDATE sessions SET requests = requests + 1, input_tokens = input_tokens + ?3, output_tokens = output_tokens + ?4,
                          cached_tokens = cached_tokens + ?5, cache_write_tokens = cache_write_tokens + ?6
                        WHERE pool = ?1 AND session = ?2`),
    // A scan of the pool's sessions (at most session.max): an index on the totals would cost every release a write.
    top: db.query(`SELECT pool, session, key_id, requests, input_tokens, output_tokens, cached_tokens, cache_write_tokens, expires_at
                   FROM sessions WHERE pool = ?1 AND expires_at > ?2 ORDER BY input_tokens DESC, session LIMIT ?3`),
  };
}
