import type { Database } from "bun:sqlite";
import { DomainError } from "../../pool/errors";
import type { KeyLimits } from "../../pool/limits";
import type { KeyLimitOverrides, KeyOrigin, PoolSettings } from "../types";

/** The key columns key administration reads and writes (schema step 5). */
export interface AdminColumns {
  origin: KeyOrigin;
  limit_max_concurrency: number | null;
  limit_rpm: number | null;
  limit_tpm: number | null;
  limit_daily_requests: number | null;
}

/** The limits a key is held to: its own where it has them, else its pool's. */
export function limitsOf(row: AdminColumns, settings: PoolSettings): KeyLimits {
  return {
    rpm: row.limit_rpm ?? settings.rpm,
    tpm: row.limit_tpm ?? settings.tpm,
    dailyRequests: row.limit_daily_requests ?? settings.dailyRequests,
  };
}

export function overridesOf(row: AdminColumns): Required<KeyLimitOverrides> {
  return { maxConcurrency: row.limit_max_concurrency, rpm: row.limit_rpm, tpm: row.limit_tpm, dailyRequests: row.limit_daily_requests };
}

/** `changes` applied over `current`: an absent field keeps its value, null clears it. */
export function mergeOverrides(current: Required<KeyLimitOverrides>, changes: KeyLimitOverrides): Required<KeyLimitOverrides> {
  const pick = (field: keyof KeyLimitOverrides) => (changes[field] === undefined ? current[field] : changes[field]);
  return { maxConcurrency: pick("maxConcurrency"), rpm: pick("rpm"), tpm: pick("tpm"), dailyRequests: pick("dailyRequests") };
}

/** Refuses to let the admin API change a key the config defines: the config would silently win at the next reload. */
export function ownedError(origin: KeyOrigin, pool: string, id: string): DomainError {
  if (origin === "env") {
    return new DomainError("KEY_OWNED_BY_ENV", `key "${id}" in pool "${pool}" comes from the environment (KEYPOOL_POOL_*_KEYS); change the variable and restart instead`);
  }
  return new DomainError(
    "KEY_OWNED_BY_FILE",
    `key "${id}" in pool "${pool}" is defined in the pool's tokens file; edit tokens.txt instead, then reload (POST /reload, SIGHUP or watch: true)`,
  );
}

/** Key administration's own statements; every method runs inside the caller's transaction. */
export class AdminWrites {
  private readonly sql: ReturnType<typeof prepare>;

  constructor(db: Database) {
    this.sql = prepare(db);
  }

  /**
   * Records where a synced key came from. A key the config takes over from the admin API loses the
   * limits the API gave it: from now on the config says what the key is.
   */
  setConfigOrigin(pool: string, id: string, origin: Exclude<KeyOrigin, "api">): void {
    this.sql.setConfigOrigin.run(origin, pool, id);
  }

  /** Writes a key's own limits and the in-flight cap the pick reads (its own, else the pool's). */
  writeLimits(pool: string, id: string, limits: Required<KeyLimitOverrides>, poolMaxConcurrency: number | undefined): void {
    this.sql.writeLimits.run(limits.maxConcurrency, limits.rpm, limits.tpm, limits.dailyRequests, poolMaxConcurrency ?? null, pool, id);
  }

  /** A reload may change the pool's in-flight cap; keys with their own keep theirs. */
  applyPoolConcurrency(pool: string, id: string, poolMaxConcurrency: number | undefined): void {
    this.sql.applyPoolConcurrency.run(poolMaxConcurrency ?? null, pool, id);
  }

  markApiKey(pool: string, id: string): void {
    this.sql.markApi.run(pool, id);
  }

  setWeight(pool: string, id: string, weight: number): void {
    this.sql.setWeight.run(weight, pool, id);
  }
}

function prepare(db: Database) {
  return {
    setConfigOrigin: db.query(`UPDATE keys SET origin = ?1, limit_max_concurrency = NULL, limit_rpm = NULL, limit_tpm = NULL,
                                 limit_daily_requests = NULL
                               WHERE pool = ?2 AND id = ?3 AND origin != ?1`),
    writeLimits: db.query(`UPDATE keys SET limit_max_concurrency = ?1, limit_rpm = ?2, limit_tpm = ?3, limit_daily_requests = ?4,
                             max_concurrency = COALESCE(?1, ?5)
                           WHERE pool = ?6 AND id = ?7`),
    applyPoolConcurrency: db.query(`UPDATE keys SET max_concurrency = COALESCE(limit_max_concurrency, ?1) WHERE pool = ?2 AND id = ?3`),
    markApi: db.query(`UPDATE keys SET origin = 'api' WHERE pool = ?1 AND id = ?2`),
    setWeight: db.query(`UPDATE keys SET weight = ?1 WHERE pool = ?2 AND id = ?3`),
  };
}
