import type { Database } from "bun:sqlite";
import { isTakeable } from "../../pool/key-state";
import type { RestoredKeyState } from "../poolctl-state";

const IMPORTED = "poolctl_state_imported_from";

export interface PoolctlImport {
  /** Keys whose state was taken over; 0 when `already` or when no id matched. */
  restored: number;
  /** The file was imported into this state file before (from the path given): nothing was done now. */
  already?: string;
}

/**
 * Takes poolctl's learned state over for keys of `pools` with the same id, once per state file:
 * afterwards keypool's own record is the truth, and a restart must not roll it back to the JSON.
 * One transaction, so a crash leaves either no import or all of it.
 */
export function importPoolctlStateOnce(
  db: Database,
  source: string,
  states: readonly RestoredKeyState[],
  pools: readonly string[],
): PoolctlImport {
  const run = db.transaction((): PoolctlImport => {
    const before = db.query("SELECT value FROM meta WHERE name = ?1").get(IMPORTED) as { value: string } | null;
    if (before) return { restored: 0, already: before.value };
    const update = db.query(
      `UPDATE keys SET health = ?1, reason = ?2, ready_at = ?3, takeable = ?4, last_check = ?5, last_used = ?6,
         requests = ?7, errors = ?8, consecutive_failures = ?9, last_check_status = ?10
       WHERE pool = ?11 AND id = ?12`,
    );
    let restored = 0;
    for (const pool of pools) {
      for (const s of states) {
        const { health, reason, readyAt } = s.condition;
        const changes = update.run(
          health,
          reason,
          readyAt,
          isTakeable(s.condition) ? 1 : 0,
          s.lastCheck,
          s.lastUsed,
          s.requests,
          s.errors,
          s.consecutiveFailures,
          s.lastCheckStatus,
          pool,
          s.id,
        ).changes;
        restored += changes;
      }
    }
    db.query("INSERT INTO meta (name, value) VALUES (?1, ?2)").run(IMPORTED, source);
    return { restored };
  });
  return run.immediate();
}
