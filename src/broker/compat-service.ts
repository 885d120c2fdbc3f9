import type { Clock } from "../pool/clock";
import { DomainError } from "../pool/errors";
import type { KeyState } from "../pool/key-state";
import { REPORTED_HEALTH, type ReportedHealth, outcomeOfReport, reportedHealthOf } from "../pool/reported-health";
import type { PoolStore } from "../store/types";
import type { BrokerService, StatusBody, StatusRow } from "./broker-service";
import type { KeyAdminService } from "./key-admin-service";

export { REPORTED_HEALTH, type ReportedHealth };

export interface CompatKey {
  success: true;
  model: string;
  key: string;
  pool: PoolCounts;
}

interface PoolCounts {
  totalKeys: number;
  healthyKeys: number;
}

/** `POST /health/:pool`'s body. */
export interface CompatHealthReport {
  key: string;
  status: ReportedHealth;
  error?: string | null;
}

export interface CompatReport {
  success: true;
  model: string;
  id: string;
  state: KeyState;
  reason: string | null;
}

/** What POST and DELETE /keys/:pool did; the token itself is never in it. */
export interface CompatKeyChange {
  success: true;
  model: string;
  id: string;
  masked: string;
  /** added/removed: the admin API's own key; enabled/disabled: a key the config owns, switched. */
  result: "added" | "enabled" | "removed" | "disabled";
  pool: PoolCounts;
}

/** One pool in `GET /status`'s `models`, as Key Pool Manager clients read it. */
export interface CompatModelStatus {
  totalKeys: number;
  health: Record<ReportedHealth, number>;
  currentIndex: number;
  stats: { totalRequests: number; successRate: string };
}

/** The fields Key Pool Manager's `GET /status` has, answered beside keypool's own. */
export interface CompatStatusFields {
  status: "ok";
  /** Epoch milliseconds. */
  timestamp: number;
  models: Record<string, CompatModelStatus>;
}

/**
 * The compatibility API (`/keys/:pool`, `POST /health/:pool`, the extra `/status` fields) over the
 * broker and key administration, for clients written against similar tools: they name a key by
 * its token, not by an id or a lease.
 */
export class CompatService {
  constructor(
    private readonly broker: BrokerService,
    private readonly store: PoolStore,
    private readonly keyAdmin: KeyAdminService,
    private readonly clock: Clock,
  ) {}

  async take(pool: string): Promise<CompatKey> {
    const taken = await this.broker.take(pool);
    return { success: true, model: pool, key: taken.token, pool: await this.counts(pool) };
  }

  /** Applies a reported health to the key holding `token`, giving back its oldest lease if it has one. */
  async report(pool: string, report: CompatHealthReport): Promise<CompatReport> {
    const id = await this.idOf(pool, report.key);
    const { ok, class: cls, body, verdict } = outcomeOfReport(report.status, report.error);
    const result = await this.broker.release({ id, pool, ok, class: cls, error_body: body, verdict });
    return { success: true, model: pool, id, state: result.state, reason: result.reason };
  }

  /**
   * Adds a key by its token. A token the pool has as a switched-off config key is switched back on:
   * that is how a key taken out with DELETE (or reported failed) comes back.
   */
  async add(pool: string, token: string): Promise<CompatKeyChange> {
    const id = await this.store.findKeyByToken(pool, token);
    if (id === null) {
      const added = await this.keyAdmin.add(pool, { token });
      return this.change(pool, added, "added");
    }
    const key = await this.keyRecord(pool, id);
    if (key.enabled && key.state !== "quarantined" && key.state !== "dead") {
      throw new DomainError("KEY_EXISTS", `pool "${pool}" already has that key (id "${id}") and it is in rotation`);
    }
    // Off and on again: a key reported failed comes back on probation, as after any operator's switch.
    if (key.enabled) await this.keyAdmin.update(pool, id, { enabled: false });
    return this.change(pool, await this.keyAdmin.update(pool, id, { enabled: true }), "enabled");
  }

  /**
   * Takes a key out by its token: a key the admin API added is removed; one the config (environment
   * or tokens file) defines is disabled instead, since the config would bring it back at the next start.
   */
  async remove(pool: string, token: string): Promise<CompatKeyChange> {
    const id = await this.idOf(pool, token);
    const key = await this.keyRecord(pool, id);
    if (key.origin === "api") {
      await this.keyAdmin.remove(pool, id);
      return this.change(pool, key, "removed");
    }
    return this.change(pool, await this.keyAdmin.update(pool, id, { enabled: false }), "disabled");
  }

  /** `status`, `timestamp` and `models` as Key Pool Manager's `GET /status` has them, read off keypool's own answer. */
  statusFields(own: StatusBody): CompatStatusFields {
    const models: Record<string, CompatModelStatus> = {};
    for (const [name, pool] of Object.entries(own.pools)) {
      models[name] = modelStatus(
        own.keys.filter((row) => row.pool === name),
        pool.usage?.success_rate ?? null,
      );
    }
    return { status: "ok", timestamp: this.clock.now(), models };
  }

  private async change(pool: string, key: { id: string; masked: string }, result: CompatKeyChange["result"]) {
    const counts = await this.counts(pool);
    const change: CompatKeyChange = {
      success: true,
      model: pool,
      id: key.id,
      masked: key.masked,
      result,
      pool: counts,
    };
    return change;
  }

  private async idOf(pool: string, token: string): Promise<string> {
    const id = await this.store.findKeyByToken(pool, token);
    // The token is never echoed: a wrong one may be someone's real key for something else.
    if (id === null) throw new DomainError("UNKNOWN_KEY", `pool "${pool}" has no key with that token`);
    return id;
  }

  private async keyRecord(pool: string, id: string) {
    const key = (await this.store.listKeys(pool)).find((k) => k.id === id);
    if (!key) throw new DomainError("UNKNOWN_KEY", `key "${id}" is no longer in pool "${pool}"`);
    return key;
  }

  /** `healthyKeys` counts what /status's `models` calls healthy: a key resting after a failure is not. */
  private async counts(pool: string): Promise<PoolCounts> {
    const keys = await this.store.status(pool);
    return { totalKeys: keys.length, healthyKeys: keys.filter((k) => reportedHealthOf(k) === "healthy").length };
  }
}

/**
 * A pool in Key Pool Manager's terms. `totalRequests` counts the keys handed out; `successRate` is the
 * share of outcomes reported over the last day that were successes (100% before any was reported).
 * keypool has no round-robin cursor, so `currentIndex` is the position after the key last handed out or
 * reported on, in /status order: where a round-robin would go next.
 */
export function modelStatus(keys: readonly StatusRow[], successRate: number | null): CompatModelStatus {
  const health: Record<ReportedHealth, number> = { healthy: 0, degraded: 0, failed: 0, rate_limited: 0 };
  let totalRequests = 0;
  let last = -1;
  keys.forEach((key, index) => {
    health[reportedHealthOf({ state: key.state, failClass: key.class })]++;
    totalRequests += key.requests;
    // ISO times compare as strings.
    if (key.last_used !== null && (last < 0 || key.last_used > (keys[last]!.last_used ?? ""))) last = index;
  });
  return {
    totalKeys: keys.length,
    health,
    currentIndex: keys.length === 0 ? 0 : (last + 1) % keys.length,
    stats: { totalRequests, successRate: `${(100 * (successRate ?? 1)).toFixed(2)}%` },
  };
}
