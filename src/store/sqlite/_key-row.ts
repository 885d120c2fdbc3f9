import type { KeyHealth } from "../../pool/key-state";
import type { AdminColumns, PolicyColumns } from "../key-columns";

/** A row of the `keys` table, as SELECT * returns it. */
export interface KeyRow extends PolicyColumns, AdminColumns {
  pool: string;
  id: string;
  token: string;
  weight: number;
  health: KeyHealth;
  reason: string | null;
  ready_at: number;
  takeable: number;
  rank: number;
  max_concurrency: number | null;
  in_flight: number;
  last_used: number | null;
  last_check: number | null;
  requests: number;
  errors: number;
  last_check_status: number | null;
  last_check_latency_ms: number | null;
  consecutive_failures: number;
  source_token: string | null;
  source_refresh_token: string | null;
  refresh_token: string | null;
  expires_at: number | null;
  next_check_at: number;
  refresh_owner: string | null;
  refresh_lock_until: number;
}
