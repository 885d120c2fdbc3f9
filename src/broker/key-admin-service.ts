import { isoTime, microsOfUsd } from "../pool/bounds";
import type { SpendCaps } from "../pool/budget";
import { UNSENDABLE_TOKEN, deriveKeyId, isSendableToken } from "../pool/token-rules";
import { DomainError } from "../pool/errors";
import {
  FAILURE_BUCKETS,
  type FailureBucket,
  type UsageTotals,
  type UsageWindow,
  addUsage,
  cacheHitRatio,
  emptyUsage,
  successRate,
} from "../pool/usage";
import type { KeyLimitOverrides, KeyOrigin, KeyRecord, PoolStore, SpendCapChanges } from "../store/types";

/** The snake_case limits of a request or response body. */
export interface LimitsJson {
  max_concurrency?: number | null;
  rpm?: number | null;
  tpm?: number | null;
  daily_requests?: number | null;
}

/** A key's spend caps in USD per UTC day and month, as bodies give and show them; null: no cap. */
export interface BudgetJson {
  day?: number | null;
  month?: number | null;
}

export interface NewKeyRequest {
  id?: string;
  token: string;
  weight?: number;
  group?: string;
  limits?: LimitsJson;
  budget?: BudgetJson;
}

export interface KeyChangesRequest {
  enabled?: boolean;
  weight?: number;
  group?: string | null;
  limits?: LimitsJson;
  budget?: BudgetJson;
}

/** A key in admin responses: never the token. */
export interface AdminKeyJson {
  pool: string;
  id: string;
  masked: string;
  origin: KeyOrigin;
  state: KeyRecord["state"];
  reason: string | null;
  enabled: boolean;
  weight: number;
  group: string | null;
  limits: Required<LimitsJson>;
  in_flight: number;
  budget: Required<BudgetJson>;
}

export interface UsageJson {
  requests: number;
  successes: number;
  failures: Record<FailureBucket, number>;
  success_rate: number | null;
  input_tokens: number;
  output_tokens: number;
  cached_tokens: number;
  cache_write_tokens: number;
  /** cached_tokens / input_tokens; null before any input. */
  cache_hit_ratio: number | null;
  cost_usd: number;
}

/** A usage summary without the per-class failure counts (for /status, beside each key and pool). */
export type CompactUsageJson = Omit<UsageJson, "successes" | "failures">;

export interface PoolUsageJson {
  pool: string;
  window: UsageWindow;
  since: string | null;
  totals: UsageJson;
  keys: Array<{ id: string; present: boolean; usage: UsageJson }>;
}

export interface KeyAdminDeps {
  store: PoolStore;
  /** The tokens file that owns a pool's file keys, for messages; read at call time so a reload shows. */
  tokensFileOf: (pool: string) => string | undefined;
}

/**
 * Key administration and usage, in HTTP-free terms. Changes go straight to the store, so the next
 * take sees them, and the store keeps them across restarts and reloads.
 */
export class KeyAdminService {
  constructor(private readonly deps: KeyAdminDeps) {}

  async pools() {
    const names = this.deps.store.poolNames();
    const pools = await Promise.all(
      names.map(async (name) => {
        const keys = await this.deps.store.listKeys(name);
        const origins = { file: 0, api: 0, env: 0 };
        for (const key of keys) origins[key.origin]++;
        const takeable = keys.filter((k) => k.state === "live" || k.state === "unknown").length;
        return { name, keys: keys.length, origins, takeable, tokens_file: this.deps.tokensFileOf(name) ?? null };
      }),
    );
    return { pools };
  }

  async list(pool: string) {
    return { pool, keys: (await this.deps.store.listKeys(pool)).map(keyJson) };
  }

  async add(pool: string, request: NewKeyRequest): Promise<AdminKeyJson> {
    // Checked here rather than by the schema, whose messages could quote the value.
    if (/\s/.test(request.token))
      throw new DomainError("BAD_REQUEST", "token: contains whitespace — a token is one word");
    if (!isSendableToken(request.token))
      throw new DomainError("BAD_REQUEST", `token: ${UNSENDABLE_TOKEN.replace(" — check the file's encoding", "")}`);
    const id = request.id ?? deriveKeyId(request.token);
    const record = await this.explained(pool, () =>
      this.deps.store.addKey(pool, {
        id,
        token: request.token,
        weight: request.weight ?? 1,
        group: request.group,
        limits: limitsOf(request.limits),
        budget: capsOf(request.budget),
      }),
    );
    return keyJson(record);
  }

  async update(pool: string, id: string, request: KeyChangesRequest): Promise<AdminKeyJson> {
    if (Object.keys(request).length === 0)
      throw new DomainError("BAD_REQUEST", "nothing to change: give enabled, weight, group, limits or budget");
    const record = await this.explained(pool, () =>
      this.deps.store.updateKey(pool, id, {
        enabled: request.enabled,
        weight: request.weight,
        group: request.group,
        limits: request.limits && limitsOf(request.limits),
        budget: request.budget && capChangesOf(request.budget),
      }),
    );
    return keyJson(record);
  }

  async remove(pool: string, id: string) {
    await this.explained(pool, () => this.deps.store.removeKey(pool, id));
    return { pool, id, removed: true as const };
  }

  async usage(pool: string, window: UsageWindow = "day"): Promise<PoolUsageJson> {
    const report = await this.deps.store.usage({ pool, window });
    const totals = emptyUsage();
    const present = new Set((await this.deps.store.listKeys(pool)).map((k) => k.id));
    const byId = new Map(report.keys.map((k) => [k.id, k]));
    for (const key of report.keys) addUsage(totals, key.usage);
    // Every current key, with or without usage, then keys since removed whose usage still counts.
    const ids = [...present, ...report.keys.map((k) => k.id).filter((id) => !present.has(id))];
    return {
      pool,
      window,
      since: report.since === 0 ? null : isoTime(report.since),
      totals: usageJson(totals),
      keys: ids.map((id) => ({ id, present: present.has(id), usage: usageJson(byId.get(id)?.usage ?? emptyUsage()) })),
    };
  }

  /** Names the tokens file in a refusal, so the operator knows exactly what to edit. */
  private async explained<T>(pool: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      const file = this.deps.tokensFileOf(pool);
      if (error instanceof DomainError && error.code === "KEY_OWNED_BY_FILE" && file) {
        throw new DomainError(
          error.code,
          error.message.replace("the pool's tokens file; edit tokens.txt", `${file}; edit ${file}`),
        );
      }
      throw error;
    }
  }
}

function limitsOf(json: LimitsJson | undefined): KeyLimitOverrides | undefined {
  if (!json) return undefined;
  return { maxConcurrency: json.max_concurrency, rpm: json.rpm, tpm: json.tpm, dailyRequests: json.daily_requests };
}

/** A new key's caps: a null window is no cap. */
function capsOf(json: BudgetJson | undefined): SpendCaps | undefined {
  if (!json) return undefined;
  const caps: SpendCaps = {};
  if (typeof json.day === "number") caps.dayMicros = microsOfUsd(json.day);
  if (typeof json.month === "number") caps.monthMicros = microsOfUsd(json.month);
  return caps.dayMicros === undefined && caps.monthMicros === undefined ? undefined : caps;
}

function capChangesOf(json: BudgetJson): SpendCapChanges {
  const micros = (usd: number | null | undefined) => (typeof usd === "number" ? microsOfUsd(usd) : usd);
  return { dayMicros: micros(json.day), monthMicros: micros(json.month) };
}

function keyJson(record: KeyRecord): AdminKeyJson {
  const { limits } = record;
  return {
    pool: record.pool,
    id: record.id,
    masked: record.masked,
    origin: record.origin,
    state: record.state,
    reason: record.reason,
    enabled: record.enabled,
    weight: record.weight,
    group: record.group,
    limits: {
      max_concurrency: limits.maxConcurrency,
      rpm: limits.rpm,
      tpm: limits.tpm,
      daily_requests: limits.dailyRequests,
    },
    in_flight: record.inFlight,
    budget: {
      day: record.budget?.dayMicros === undefined ? null : usdOf(record.budget.dayMicros),
      month: record.budget?.monthMicros === undefined ? null : usdOf(record.budget.monthMicros),
    },
  };
}

export function usageJson(usage: UsageTotals): UsageJson {
  return {
    requests: usage.requests,
    successes: usage.successes,
    failures: Object.fromEntries(FAILURE_BUCKETS.map((b) => [b, usage.failures[b]])) as Record<FailureBucket, number>,
    success_rate: successRate(usage),
    input_tokens: usage.inputTokens,
    output_tokens: usage.outputTokens,
    cached_tokens: usage.cachedTokens,
    cache_write_tokens: usage.cacheWriteTokens,
    cache_hit_ratio: cacheHitRatio(usage),
    cost_usd: usdOf(usage.costMicros),
  };
}

export function compactUsageJson(usage: UsageTotals): CompactUsageJson {
  return {
    requests: usage.requests,
    success_rate: successRate(usage),
    input_tokens: usage.inputTokens,
    output_tokens: usage.outputTokens,
    cached_tokens: usage.cachedTokens,
    cache_write_tokens: usage.cacheWriteTokens,
    cache_hit_ratio: cacheHitRatio(usage),
    cost_usd: usdOf(usage.costMicros),
  };
}

/** Micro-dollars as dollars, to the micro-dollar. */
function usdOf(micros: number): number {
  return Math.round(micros) / 1e6;
}
