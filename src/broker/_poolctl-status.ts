import type { KeyHealth } from "../pool/key-state";
import type { KeyStatus } from "../store/types";

/** How poolctl wrote a time that never happened (Go's zero time.Time), which its clients expect. */
const NEVER = "0001-01-01T00:00:00Z";

/** poolctl's statuses; "cooling" is a separate flag there, since a resting key stays live. */
type PoolctlStatus = "live" | "dead" | "unknown" | "quarantined";

const STATUS_OF: Record<KeyHealth, PoolctlStatus> = {
  live: "live",
  unknown: "unknown",
  quarantined: "quarantined",
  dead: "dead",
  // Not handed out and not revived by a check: poolctl's "dead" is the nearest meaning.
  disabled: "dead",
};

export interface PoolctlToken {
  id: string;
  pool: string;
  weight: number;
  status: PoolctlStatus;
  last_check: string;
  last_used: string;
  cooling: boolean;
  fails: number;
  requests: number;
  errors: number;
  last_status: number;
}

/** The fields poolctl's GET /status has, so its scripts and dashboards read keypool's answer unchanged. */
export interface PoolctlStatusFields {
  total: number;
  live: number;
  dead: number;
  unknown: number;
  quarantined: number;
  cooling: number;
  tokens: PoolctlToken[];
}

export function poolctlStatusFields(rows: readonly KeyStatus[]): PoolctlStatusFields {
  const tokens = rows.map(poolctlToken);
  const count = (status: PoolctlStatus) => tokens.filter((t) => t.status === status).length;
  return {
    total: tokens.length,
    live: count("live"),
    dead: count("dead"),
    unknown: count("unknown"),
    quarantined: count("quarantined"),
    cooling: tokens.filter((t) => t.cooling).length,
    tokens,
  };
}

function poolctlToken(row: KeyStatus): PoolctlToken {
  return {
    id: row.id,
    pool: row.pool,
    weight: row.weight,
    status: STATUS_OF[row.health],
    last_check: row.lastCheck === null ? NEVER : new Date(row.lastCheck).toISOString(),
    last_used: row.lastUsed === null ? NEVER : new Date(row.lastUsed).toISOString(),
    // A rest that ends by itself: after a take, a failure, or a timed quarantine.
    cooling: row.until !== null,
    // poolctl counted reported failures in a row (a failed check marked the key dead without counting).
    fails: row.rung,
    requests: row.requests,
    errors: row.errors,
    last_status: row.lastCheckStatus ?? 0,
  };
}
