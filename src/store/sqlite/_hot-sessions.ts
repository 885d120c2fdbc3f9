import type { Database, SQLQueryBindings } from "bun:sqlite";
import type { TokenCounts } from "../../pool/pricing";
import type { WriteStep } from "./_write-steps";
import { DEFAULT_SESSION_TTL_SEC, type SessionLookup, sessionTokenCounts } from "../session-rules";

/** A session's mapping as this process last knew it, and what the file does not know of it yet. */
interface CachedSession {
  pool: string;
  session: string;
  keyId: string;
  detourId: string | null;
  expiresAt: number;
  /** The file may map the session differently now: read the row again before deciding on it. */
  reread: boolean;
  /** Taken on its own key since the last flush: the flush renews the mapping. */
  renewed: boolean;
  changed: boolean;
  /** Releases and tokens since the last flush: requests, input, output, cached, cache-write. */
  usage: [number, number, number, number, number];
}

const NO_USAGE: CachedSession["usage"] = [0, 0, 0, 0, 0];

/**
 * Sticky sessions for the hot path. A session's usual take — its own key, which is ready — changes
 * nothing another process decides on but the mapping's expiry, so the hot path decides it on a cache of
 * the mappings this process uses and the flush renews them. Every other take for a session (a new one, a
 * detour, a new own key) goes through the store's transaction and SessionMap (./_sessions.ts), so two
 * processes never map one session to two keys. The cache is dropped whenever another connection commits.
 */
export class HotSessions {
  private readonly cache = new Map<string, CachedSession>();
  private readonly sql: ReturnType<typeof prepare>;

  constructor(db: Database) {
    this.sql = prepare(db);
  }

  /** `canComeBack`: whether a key exists and may free up by itself (not quarantined, dead or disabled). */
  lookup(pool: string, session: string, now: number, canComeBack: (id: string) => boolean): SessionLookup {
    const entry = this.entry(pool, session);
    if (!entry) return { pool, session, own: null, candidates: [], stored: false };
    const own = entry.expiresAt > now && canComeBack(entry.keyId) ? entry.keyId : null;
    const candidates = [own, entry.detourId].filter((id): id is string => id !== null);
    return { pool, session, own, candidates, stored: true };
  }

  /**
   * After a take of the session's own key: its mapping lives on. Every other take for a session (a new
   * session, a detour, a new own key) changes the mapping, which other processes must see at once: the
   * store's transaction records it.
   */
  backOnOwn(lookup: SessionLookup, now: number, limits: { ttlSec?: number }): void {
    const entry = this.cache.get(slotOf(lookup.pool, lookup.session));
    if (!entry) return;
    entry.detourId = null;
    entry.expiresAt = now + (limits.ttlSec ?? DEFAULT_SESSION_TTL_SEC) * 1000;
    entry.renewed = true;
    entry.changed = true;
  }

  /** A release's tokens, added to its session's totals at the next flush. */
  addUsage(pool: string, session: string, usage: TokenCounts | undefined): void {
    const entry = this.entry(pool, session);
    if (!entry) return;
    const [input, output, cached, cacheWrite] = sessionTokenCounts(usage);
    entry.usage[0]++;
    entry.usage[1] += input;
    entry.usage[2] += output;
    entry.usage[3] += cached;
    entry.usage[4] += cacheWrite;
    entry.changed = true;
  }

  /** Mappings cached (each is read again after a clear). */
  get size(): number {
    return this.cache.size;
  }

  get dirty(): boolean {
    for (const entry of this.cache.values()) if (entry.changed) return true;
    return false;
  }

  /** Every renewed mapping and the sessions' usage, as writes of the hot path's flush; forgotten here. */
  collectFlush(): WriteStep[] {
    const renewals: SQLQueryBindings[][] = [];
    const usage: SQLQueryBindings[][] = [];
    for (const entry of this.cache.values()) {
      if (!entry.changed) continue;
      if (entry.renewed) renewals.push([entry.expiresAt, entry.pool, entry.session, entry.keyId]);
      if (entry.usage[0] > 0) usage.push([entry.pool, entry.session, ...entry.usage]);
      entry.usage = [...NO_USAGE];
      entry.renewed = false;
      entry.changed = false;
    }
    return [
      { sql: RENEW_SQL, rows: renewals },
      { sql: ADD_USAGE_SQL, rows: usage },
    ];
  }

  /**
   * Another process (or the store's own transaction) may have changed a mapping: each is read again at
   * its next use. What this process has not written yet (a renewal, usage) is kept.
   */
  clear(): void {
    for (const [slot, entry] of this.cache) {
      if (entry.changed) entry.reread = true;
      else this.cache.delete(slot);
    }
  }

  private entry(pool: string, session: string): CachedSession | undefined {
    const slot = slotOf(pool, session);
    let entry = this.cache.get(slot);
    if (entry && !entry.reread) return entry;
    const row = this.sql.get.get(pool, session) as {
      key_id: string;
      detour_id: string | null;
      expires_at: number;
    } | null;
    if (entry && row) {
      entry.reread = false;
      entry.keyId = row.key_id;
      entry.detourId = row.detour_id;
      entry.expiresAt = Math.max(row.expires_at, entry.renewed ? entry.expiresAt : 0);
      return entry;
    }
    // Gone from the file (lapsed, evicted): its unwritten usage has no row to go to, as in the store.
    if (!row) {
      this.cache.delete(slot);
      return undefined;
    }
    entry = {
      pool,
      session,
      keyId: row.key_id,
      detourId: row.detour_id,
      expiresAt: row.expires_at,
      reread: false,
      renewed: false,
      changed: false,
      usage: [...NO_USAGE],
    };
    this.cache.set(slot, entry);
    return entry;
  }
}

function slotOf(pool: string, session: string): string {
  return `${pool}\n${session}`;
}

function prepare(db: Database) {
  return {
    get: db.query(`SELECT key_id, detour_id, expires_at FROM sessions WHERE pool = ?1 AND session = ?2`),
  };
}

// Only while the file still maps the session to that key: a remap another process made stands.
const RENEW_SQL = `UPDATE sessions SET detour_id = NULL, expires_at = MAX(expires_at, ?1)
                   WHERE pool = ?2 AND session = ?3 AND key_id = ?4`;
const ADD_USAGE_SQL = `UPDATE sessions SET requests = requests + ?3, input_tokens = input_tokens + ?4,
                         output_tokens = output_tokens + ?5, cached_tokens = cached_tokens + ?6,
                         cache_write_tokens = cache_write_tokens + ?7
                       WHERE pool = ?1 AND session = ?2`;
