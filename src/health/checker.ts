import type { CheckConfig, PoolConfig } from "../config/types";
import { type Logger, silentLogger } from "../log";
import { type MetricsRecorder, noMetrics } from "../metrics/metrics";
import { scrubSecrets } from "../pool/scrub-secrets";
import type { Clock } from "../pool/clock";
import type { DueCheck, PoolStore } from "../store/types";
import { probeKey, type ProbeResult } from "./probe";
import {
  DEFAULT_REFRESH_AHEAD_SEC,
  REFRESH_TIMEOUT_SEC,
  refreshKey,
  refreshOwnerId,
  type RefreshOutcome,
} from "./refresh";

export const DEFAULT_CHECK_CONCURRENCY = 8;
const DEFAULT_TICK_MS = 1000;

export interface CheckerOptions {
  store: PoolStore;
  /** Read on every tick, so a config reload takes effect without restarting the checker. */
  pools: () => Iterable<PoolConfig>;
  clock: Clock;
  logger?: Logger;
  metrics?: MetricsRecorder;
  /** How often the timer looks for due checks; the schedule itself lives in the store. */
  tickMs?: number;
  /** Told of every failed token refresh (the reason is free of token values), e.g. to raise an alert. */
  onRefreshFailed?: (pool: string, id: string, reason: string) => void;
}

type CheckedPool = PoolConfig & { check: CheckConfig };

/**
 * Probes keys when the store says they are due, turns results into state through the store,
 * and refreshes tokens on 401 and ahead of a known expiry. `start()` runs `tick()` on a timer;
 * tests call `tick()` themselves with a manual clock.
 */
export class Checker {
  private readonly store: PoolStore;
  private readonly pools: () => Iterable<PoolConfig>;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly metrics: MetricsRecorder;
  private readonly tickMs: number;
  private readonly onRefreshFailed: CheckerOptions["onRefreshFailed"];
  private readonly owner = refreshOwnerId();
  private readonly aborter = new AbortController();
  /** Probe slots in use per pool, shared by overlapping ticks so the cap holds across them. */
  private readonly busySlots = new Map<string, number>();
  private readonly ticks = new Set<Promise<void>>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private stopping = false;

  constructor(options: CheckerOptions) {
    this.store = options.store;
    this.pools = options.pools;
    this.clock = options.clock;
    this.logger = options.logger ?? silentLogger;
    this.metrics = options.metrics ?? noMetrics;
    this.tickMs = options.tickMs ?? DEFAULT_TICK_MS;
    this.onRefreshFailed = options.onRefreshFailed;
  }

  start(): void {
    if (this.timer || this.stopping) return;
    const run = () => {
      this.tick().catch((error) => this.logger.error("health check pass failed", { error: (error as Error).message }));
    };
    // Ticks do not wait for each other: a slow probe in one pool must not hold up the others' schedule.
    this.timer = setInterval(run, this.tickMs);
    run();
  }

  /** Probes every key that is due, up to each pool's concurrency, and resolves when they are all recorded. */
  async tick(): Promise<void> {
    if (this.stopping) return;
    const pass = this.runPass();
    this.ticks.add(pass);
    try {
      await pass;
    } finally {
      this.ticks.delete(pass);
    }
  }

  /** Stops the timer, aborts probes and refreshes in flight (killing command probes), and waits for them. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    this.timer = undefined;
    this.aborter.abort();
    while (this.ticks.size > 0) await Promise.allSettled([...this.ticks]);
  }

  private async runPass(): Promise<void> {
    const checked = [...this.pools()].filter((pool): pool is CheckedPool => pool.check !== undefined);
    const results = await Promise.allSettled(checked.map((pool) => this.fillSlots(pool)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
  }

  /** Claims as many due keys as the pool has free slots and probes them; each freed slot is refilled. */
  private async fillSlots(pool: CheckedPool): Promise<void> {
    const free = (pool.check.concurrency ?? DEFAULT_CHECK_CONCURRENCY) - this.slotsInUse(pool.name);
    if (free <= 0 || this.stopping) return;
    // Reserved before the await, so a slot freed meanwhile cannot be handed out twice.
    this.adjustSlots(pool.name, free);
    let due: DueCheck[] = [];
    try {
      due = await this.store.claimDueChecks(pool.name, free, holdMs(pool));
    } finally {
      this.adjustSlots(pool.name, due.length - free);
    }
    await Promise.all(due.map((key) => this.checkInSlot(pool, key)));
  }

  private async checkInSlot(pool: CheckedPool, key: DueCheck): Promise<void> {
    try {
      await this.checkKey(pool, key);
    } catch (error) {
      // Typically the key left the pool in a reload while it was probed.
      this.logger.warn("health check not recorded", { pool: pool.name, id: key.id, error: (error as Error).message });
    } finally {
      this.adjustSlots(pool.name, -1);
    }
    if (!this.stopping) await this.fillSlots(pool);
  }

  private async checkKey(pool: CheckedPool, key: DueCheck): Promise<void> {
    const refresh = pool.refresh?.enabled ? pool.refresh : undefined;
    let token = key.token;
    let refreshed = false;

    const aheadMs = (refresh?.aheadSec ?? DEFAULT_REFRESH_AHEAD_SEC) * 1000;
    if (refresh && key.expiresAt !== null && key.expiresAt - aheadMs <= this.clock.now()) {
      const outcome = await this.refresh(pool, key.id, token);
      if (outcome.status === "refreshed" || outcome.status === "superseded") {
        token = outcome.token;
        refreshed = true;
      } else if (outcome.status !== "busy") {
        return; // failed: quarantined by the refresh; aborted or missing: nothing to record
      }
    }

    let result = await this.probe(pool, key.id, token);
    if (!result) return;
    if (refresh && result.status === 401 && !refreshed) {
      // Recorded first so that, if the refresh fails, its reason is the one the key ends up with.
      await this.store.recordCheck(pool.name, key.id, { ...result, token, model: pool.check.model });
      this.metrics.recordCheck(pool.name, result);
      const outcome = await this.refresh(pool, key.id, token);
      if (outcome.status !== "refreshed" && outcome.status !== "superseded") return;
      token = outcome.token;
      result = await this.probe(pool, key.id, token);
      if (!result) return;
    }
    // A check that names its model speaks for that (key, model) pair too: a success ends its denial.
    await this.store.recordCheck(pool.name, key.id, { ...result, token, model: pool.check.model });
    this.metrics.recordCheck(pool.name, result);
    this.logger.debug("key checked", {
      pool: pool.name,
      id: key.id,
      ok: result.ok,
      status: result.status,
      reason: result.reason,
    });
  }

  /** A probe's result, or undefined when it was cut short by stop(): that says nothing about the key. */
  private async probe(pool: CheckedPool, keyId: string, token: string): Promise<ProbeResult | undefined> {
    const result = await probeKey(pool.check, token, { proxy: pool.proxy, signal: this.aborter.signal, keyId });
    return this.aborter.signal.aborted ? undefined : result;
  }

  private async refresh(pool: CheckedPool, id: string, staleToken: string): Promise<RefreshOutcome> {
    const outcome = await refreshKey(
      { store: this.store, clock: this.clock, owner: this.owner },
      { pool: pool.name, id, staleToken },
      pool.refresh!,
      { proxy: pool.proxy, signal: this.aborter.signal },
    );
    if (outcome.status === "refreshed") this.logger.info("token refreshed", { pool: pool.name, id });
    // The reason may quote the token endpoint's error body.
    if (outcome.status === "failed") {
      const reason = scrubSecrets(outcome.reason, [staleToken]);
      this.logger.warn("token refresh failed", { pool: pool.name, id, reason });
      this.onRefreshFailed?.(pool.name, id, reason);
    }
    return outcome;
  }

  private slotsInUse(pool: string): number {
    return this.busySlots.get(pool) ?? 0;
  }

  private adjustSlots(pool: string, delta: number): void {
    this.busySlots.set(pool, this.slotsInUse(pool) + delta);
  }
}

/**
 * How long a claimed key is withheld from other checkers: a pass may probe it twice around a
 * refresh. A checker that dies mid-probe leaves the key due again once this passes.
 */
function holdMs(pool: CheckedPool): number {
  const refreshSec = pool.refresh?.enabled ? REFRESH_TIMEOUT_SEC : 0;
  return (2 * pool.check.timeoutSec + refreshSec + 30) * 1000;
}
