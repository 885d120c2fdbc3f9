import { DomainError } from "../pool/errors";
import type { KeyState } from "../pool/key-state";
import type { PoolStore } from "../store/types";
import type { BrokerService } from "./broker-service";

/** What similar key-rotation tools report about a key: `POST /health/:pool`'s `status`. */
export const REPORTED_HEALTH = ["healthy", "degraded", "failed", "rate_limited"] as const;
export type ReportedHealth = (typeof REPORTED_HEALTH)[number];

export interface CompatKey {
  success: true;
  model: string;
  key: string;
  pool: { totalKeys: number; healthyKeys: number };
}

export interface CompatReport {
  success: true;
  model: string;
  id: string;
  state: KeyState;
  reason: string | null;
  note?: string;
}

// Not broken: such a key is in rotation now or will be once its rest ends.
const HEALTHY_STATES: ReadonlySet<KeyState> = new Set(["unknown", "live", "cooling"]);
const AUTH_WORDS = /\b(401|403)\b|unauthori[sz]ed|forbidden|(invalid|incorrect)[ _-]?(api[ _-]?)?key|authenticat/i;
const RATE_WORDS = /\b429\b|rate[ _-]?limit|too many requests/i;

/**
 * The compatibility API (`GET /keys/:pool`, `POST /health/:pool`) over the broker, for clients
 * written against similar tools: they name a key by its token, not by an id or a lease.
 */
export class CompatService {
  constructor(
    private readonly broker: BrokerService,
    private readonly store: PoolStore,
  ) {}

  async take(pool: string): Promise<CompatKey> {
    const taken = await this.broker.take(pool);
    return { success: true, model: pool, key: taken.token, pool: await this.counts(pool) };
  }

  /** Applies a reported health to the key holding `token`, giving back its oldest lease if it has one. */
  async report(pool: string, report: { key: string; status: ReportedHealth; error?: string }): Promise<CompatReport> {
    const id = await this.store.findKeyByToken(pool, report.key);
    // The token is never echoed: a wrong one may be someone's real key for something else.
    if (id === null) throw new DomainError("UNKNOWN_KEY", `pool "${pool}" has no key with that token`);
    const result = await this.broker.release({ id, pool, ...outcomeOf(report.status, report.error) });
    const note = report.status === "degraded" ? "degraded is counted as a success: the key stays in rotation" : undefined;
    return { success: true, model: pool, id, state: result.state, reason: result.reason, ...(note ? { note } : {}) };
  }

  private async counts(pool: string): Promise<CompatKey["pool"]> {
    const keys = await this.store.status(pool);
    return { totalKeys: keys.length, healthyKeys: keys.filter((k) => HEALTHY_STATES.has(k.state)).length };
  }
}

/**
 * A reported health as the outcome the key's state follows: `failed` is an auth failure
 * (quarantine) when its error says so, a rate limit when it says that, otherwise a server error.
 */
export function outcomeOf(status: ReportedHealth, error = ""): { ok: boolean; status?: number } {
  switch (status) {
    case "healthy":
    case "degraded":
      return { ok: true };
    case "rate_limited":
      return { ok: false, status: 429 };
    case "failed":
      if (AUTH_WORDS.test(error)) return { ok: false, status: 401 };
      if (RATE_WORDS.test(error)) return { ok: false, status: 429 };
      return { ok: false, status: 500 };
  }
}
