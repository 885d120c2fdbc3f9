import type { Database } from "bun:sqlite";
import type { KeyLimitOverrides, KeyOrigin } from "../types";

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
  writeLimits(
    pool: string,
    id: string,
    limits: Required<KeyLimitOverrides>,
    poolMaxConcurrency: number | undefined,
  ): void {
    this.sql.writeLimits.run(
      limits.maxConcurrency,
      limits.rpm,
      limits.tpm,
      limits.dailyRequests,
      poolMaxConcurrency ?? null,
      pool,
      id,
    );
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
    setConfigOrigin:
      db.query(`UPDATE keys SET origin = ?1, limit_max_concurrency = NULL, limit_rpm = NULL, limit_tpm = NULL,
                                 limit_daily_requests = NULL
                               WHERE pool = ?2 AND id = ?3 AND origin != ?1`),
    writeLimits:
      db.query(`UPDATE keys SET limit_max_concurrency = ?1, limit_rpm = ?2, limit_tpm = ?3, limit_daily_requests = ?4,
                             max_concurrency = COALESCE(?1, ?5)
                           WHERE pool = ?6 AND id = ?7`),
    applyPoolConcurrency: db.query(
      `UPDATE keys SET max_concurrency = COALESCE(limit_max_concurrency, ?1) WHERE pool = ?2 AND id = ?3`,
    ),
    markApi: db.query(`UPDATE keys SET origin = 'api' WHERE pool = ?1 AND id = ?2`),
    setWeight: db.query(`UPDATE keys SET weight = ?1 WHERE pool = ?2 AND id = ?3`),
  };
}
