import type { PoolConfig, PriceTable } from "../config/types";
import { DEFAULT_REFRESH_AHEAD_SEC } from "../health/refresh";
import { laddersOf } from "../pool/backoff";
import { compileRules } from "../pool/classify";
import { compileAccessRules } from "../pool/model-access";
import type { PoolSettings } from "../store/types";

/**
 * What the store needs of a pool's config. Kept apart from the daemon's wiring so the library can
 * use it without loading the HTTP stack.
 */
/** `prices`: the config's top-level price table, for the usage ledger's costs. */
export function poolSettingsOf(pool: PoolConfig, prices?: PriceTable): PoolSettings {
  return {
    name: pool.name,
    rotation: pool.rotation,
    cooldownSec: pool.cooldownSec,
    leaseTtlSec: pool.leaseTtlSec,
    maxConcurrency: pool.maxConcurrency,
    // Without a health check nothing would revive a quarantined key, so the quarantine times out.
    quarantineSec: pool.check ? undefined : (pool.upstream?.quarantineSec ?? 300),
    recheckIntervalSec: pool.recheckIntervalSec,
    reviveIntervalSec: pool.check?.reviveIntervalSec,
    failuresToDead: pool.check?.failuresToDead,
    refreshAheadSec: pool.refresh?.enabled ? (pool.refresh.aheadSec ?? DEFAULT_REFRESH_AHEAD_SEC) : undefined,
    classify: compileRules(pool.classify),
    ladders: laddersOf(pool.backoff),
    rpm: pool.rpm,
    tpm: pool.tpm,
    dailyRequests: pool.dailyRequests,
    sessionTtlSec: pool.session?.ttlSec,
    maxSessions: pool.session?.max,
    prices,
    failurePolicy: pool.failurePolicy,
    modelAccess: pool.modelAccess?.rules ? compileAccessRules(pool.modelAccess) : undefined,
    modelAccessRestSec: pool.modelAccess?.restSec,
    modelLimits: pool.modelLimits,
    budget: pool.budget,
  };
}
