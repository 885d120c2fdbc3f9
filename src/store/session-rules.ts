import type { TokenCounts } from "../pool/pricing";
import type { SessionUsage } from "./types";

/** Sessions are mapped for this long when the pool does not say (session.ttl_sec). */
export const DEFAULT_SESSION_TTL_SEC = 3600;
/** Mappings kept per pool when the pool does not say (session.max). */
export const DEFAULT_MAX_SESSIONS = 100_000;

/** What the store knew of a session when a take began: which keys to try first, and how to record the pick. */
export interface SessionLookup {
  pool: string;
  session: string;
  /** The session's own key, when its mapping is live and the key can still come back by itself. */
  own: string | null;
  /** Keys to try before the pool's rotation, best first: its own key, then the key it is detouring on. */
  candidates: string[];
  /** A row exists (live or lapsed): recording updates it instead of adding one. */
  stored: boolean;
}

/** A session row's token totals, as both stores keep them. */
export interface SessionUsageRow {
  pool: string;
  session: string;
  key_id: string;
  requests: number;
  input_tokens: number;
  output_tokens: number;
  cached_tokens: number;
  cache_write_tokens: number;
  expires_at: number;
}

/** What one release adds to its session's totals: input, output, cached, cache-write tokens. */
export function sessionTokenCounts(usage: TokenCounts | undefined): [number, number, number, number] {
  const whole = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? 0 : Math.max(0, Math.round(n)));
  return [whole(usage?.input), whole(usage?.output), whole(usage?.cached), whole(usage?.cacheWrite)];
}

/** A session row's totals as the API reports them. */
export function sessionUsageOf(row: SessionUsageRow): SessionUsage {
  return {
    pool: row.pool,
    session: row.session,
    keyId: row.key_id,
    requests: row.requests,
    inputTokens: row.input_tokens,
    outputTokens: row.output_tokens,
    cachedTokens: row.cached_tokens,
    cacheWriteTokens: row.cache_write_tokens,
    expiresAt: row.expires_at,
  };
}
