import type { SQL } from "bun";
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
import type { Params } from "./_key-row";

// Lapsed mappings are swept, and the table counted, at most this often per pool and process.
const SWEEP_EVERY_MS = 60_000;

/**
 * Sticky sessions in PostgreSQL, with the SQLite store's rules (see src/store/sqlite/_sessions.ts and src/store/session-rules.ts):
 * a session keeps its own key while that key can come back by itself, detours on one other key
 * meanwhile, and moves for good only when its key is out until a probe or an operator acts.
 * Every instance reads and writes the same rows, so a session sticks across instances too.
 * Recording is an UPSERT: two instances seeing a new session at once agree on one row.
 */
export class PostgresSessions {
  private readonly nextSweepAt = new Map<string, number>();
  private readonly counts = new Map<string, number>();

  async lookup(sql: SQL, pool: string, session: string, now: number): Promise<SessionLookup> {
    const [row] = (await sql`
      SELECT s.key_id, s.detour_id, s.expires_at, k.health
      FROM keypool_sessions s LEFT JOIN keypool_keys k ON k.pool = s.pool AND k.id = s.key_id
      WHERE s.pool = ${pool} AND s.session = ${session}`) as Array<{
      key_id: string;
      detour_id: string | null;
      expires_at: number;
      health: KeyHealth | null;
    }>;
    if (!row) return { pool, session, own: null, candidates: [], stored: false };
    const live = row.expires_at > now;
    const own = live && (row.health === "unknown" || row.health === "live") ? row.key_id : null;
    // A session that lost its key (or let the mapping lapse) mid-detour settles on the key it was detouring on.
    const candidates = [own, row.detour_id].filter((id): id is string => id !== null);
    return { pool, session, own, candidates, stored: true };
  }

  /** After a take for the session: its own key refreshes the mapping; any other key is a detour, or the new own key. */
  async record(
    sql: SQL,
    lookup: SessionLookup,
    keyId: string,
    now: number,
    limits: { ttlSec?: number; max?: number },
  ): Promise<void> {
    const expiresAt = now + (limits.ttlSec ?? DEFAULT_SESSION_TTL_SEC) * 1000;
    const { pool, session } = lookup;
    if (lookup.own === keyId) {
      await sql`UPDATE keypool_sessions SET detour_id = NULL, expires_at = ${expiresAt} WHERE pool = ${pool} AND session = ${session}`;
    } else if (lookup.own !== null) {
      // A detour leaves expires_at alone: a session that never gets its key back lets the mapping lapse.
      await sql`UPDATE keypool_sessions SET detour_id = ${keyId} WHERE pool = ${pool} AND session = ${session}`;
    } else {
      await sql`INSERT INTO keypool_sessions (pool, session, key_id, expires_at) VALUES (${pool}, ${session}, ${keyId}, ${expiresAt})
                ON CONFLICT (pool, session) DO UPDATE SET key_id = excluded.key_id, detour_id = NULL, expires_at = excluded.expires_at`;
      if (!lookup.stored) await this.bound(sql, pool, now, limits.max ?? DEFAULT_MAX_SESSIONS);
    }
  }

  /** Live sessions per key id of `pool`: what /status shows as sessions held. */
  async countsByKey(sql: SQL, now: number): Promise<Map<string, Map<string, number>>> {
    const rows =
      (await sql`SELECT pool, key_id, count(*)::int AS n FROM keypool_sessions WHERE expires_at > ${now} GROUP BY pool, key_id`) as Array<{
        pool: string;
        key_id: string;
        n: number;
      }>;
    const byPool = new Map<string, Map<string, number>>();
    for (const r of rows) (byPool.get(r.pool) ?? byPool.set(r.pool, new Map()).get(r.pool)!).set(r.key_id, r.n);
    return byPool;
  }

  /**
   * Adds a release's tokens to its session's totals, as a statement to put in the release's, once
   * per row of `source`; a session no longer mapped is skipped.
   */
  addUsage(source: string, params: Params, pool: string, session: string, usage: TokenCounts | undefined): string {
    const [input, output, cached, cacheWrite] = sessionTokenCounts(usage).map((n) => params.add(n, "float8"));
    return `UPDATE keypool_sessions SET requests = requests + 1, input_tokens = input_tokens + ${input},
        output_tokens = output_tokens + ${output}, cached_tokens = cached_tokens + ${cached},
        cache_write_tokens = cache_write_tokens + ${cacheWrite}
      WHERE pool = ${params.add(pool, "text")} AND session = ${params.add(session, "text")}
        AND EXISTS (SELECT 1 FROM ${source})`;
  }

  /** The pool's live sessions with the most input tokens first (a scan of at most session.max rows). */
  async top(sql: SQL, pool: string, now: number, limit: number): Promise<SessionUsage[]> {
    const rows = (await sql`
      SELECT pool, session, key_id, requests, input_tokens, output_tokens, cached_tokens, cache_write_tokens, expires_at
      FROM keypool_sessions WHERE pool = ${pool} AND expires_at > ${now}
      ORDER BY input_tokens DESC, session LIMIT ${limit}`) as SessionUsageRow[];
    return rows.map(sessionUsageOf);
  }

  /**
   * Holds the pool to `max` mappings, evicting the oldest. Counting the table costs a scan, so it is
   * counted when the periodic sweep of lapsed mappings runs, and in between this instance adds its own
   * inserts to that count: other instances' inserts are noticed at the next sweep.
   */
  private async bound(sql: SQL, pool: string, now: number, max: number): Promise<void> {
    let count = this.counts.get(pool);
    if (count === undefined || now >= (this.nextSweepAt.get(pool) ?? 0)) {
      this.nextSweepAt.set(pool, now + SWEEP_EVERY_MS);
      await sql`DELETE FROM keypool_sessions WHERE pool = ${pool} AND expires_at <= ${now}`;
      count = ((await sql`SELECT count(*)::int AS n FROM keypool_sessions WHERE pool = ${pool}`) as [{ n: number }])[0]
        .n;
    } else count++;
    if (count > max) {
      await sql`DELETE FROM keypool_sessions WHERE pool = ${pool} AND session IN (
                  SELECT session FROM keypool_sessions WHERE pool = ${pool} ORDER BY expires_at LIMIT ${count - max})`;
      count = max;
    }
    this.counts.set(pool, count);
  }
}
