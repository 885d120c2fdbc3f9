import { DomainError } from "../pool/errors";
import { KEY_STATES, type KeyState } from "../pool/key-state";
import type { KeyStatus, PoolStore, ReleaseResult } from "../store/types";

export interface TakeBody {
  id: string;
  token: string;
  pool: string;
  lease: string;
  expires_at: string;
}

export interface ReleaseRequest {
  lease?: string;
  id?: string;
  pool?: string;
  ok: boolean;
  status?: number;
}

export interface StatusBody {
  pools: Record<string, { total: number; counts: Record<KeyState, number> }>;
  keys: Array<Record<string, unknown>>;
}

/**
 * The broker's use cases over a store, in HTTP-free terms: routes translate requests into these
 * calls and results into responses, and never touch the store themselves.
 */
export class BrokerService {
  constructor(private readonly store: PoolStore) {}

  async take(pool?: string): Promise<TakeBody> {
    const lease = await this.store.take(this.resolvePool(pool));
    return { id: lease.id, token: lease.token, pool: lease.pool, lease: lease.lease, expires_at: iso(lease.expiresAt) };
  }

  async release(request: ReleaseRequest): Promise<ReleaseResult> {
    const outcome = { ok: request.ok, status: request.status };
    if (request.lease !== undefined) return this.store.release({ lease: request.lease }, outcome);
    if (request.id !== undefined) return this.store.release({ id: request.id, pool: request.pool }, outcome);
    throw new DomainError("BAD_REQUEST", 'say which key you are releasing: give "lease" (from /take) or "id"');
  }

  async status(pool?: string): Promise<StatusBody> {
    const rows = await this.store.status(pool);
    const pools: StatusBody["pools"] = {};
    for (const name of pool === undefined ? this.store.poolNames() : [pool]) pools[name] = { total: 0, counts: emptyCounts() };
    for (const row of rows) {
      const summary = (pools[row.pool] ??= { total: 0, counts: emptyCounts() });
      summary.total++;
      summary.counts[row.state]++;
    }
    return { pools, keys: rows.map(statusRow) };
  }

  /** With one pool, or a pool named "default", callers need not name it. */
  private resolvePool(pool?: string): string {
    if (pool !== undefined && pool !== "") return pool;
    const names = this.store.poolNames();
    if (names.includes("default")) return "default";
    if (names.length === 1) return names[0]!;
    throw new DomainError("BAD_REQUEST", `several pools are configured (${names.join(", ")}); say which with ?pool=NAME`);
  }
}

function emptyCounts(): Record<KeyState, number> {
  return Object.fromEntries(KEY_STATES.map((s) => [s, 0])) as Record<KeyState, number>;
}

function statusRow(row: KeyStatus): Record<string, unknown> {
  return {
    id: row.id,
    pool: row.pool,
    masked: row.masked,
    state: row.state,
    reason: row.reason,
    until: row.until === null ? null : iso(row.until),
    weight: row.weight,
    last_check: row.lastCheck === null ? null : iso(row.lastCheck),
    last_check_status: row.lastCheckStatus,
    last_check_latency_ms: row.lastCheckLatencyMs,
    consecutive_failures: row.consecutiveFailures,
    next_check_at: row.nextCheckAt === null ? null : iso(row.nextCheckAt),
    last_used: row.lastUsed === null ? null : iso(row.lastUsed),
    requests: row.requests,
    errors: row.errors,
    in_flight: row.inFlight,
  };
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
