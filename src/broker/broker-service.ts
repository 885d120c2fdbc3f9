import { type MetricsRecorder, noMetrics } from "../metrics/metrics";
import { MAX_TIME_MS, isoTime } from "../pool/bounds";
import { systemClock } from "../pool/clock";
import { DomainError } from "../pool/errors";
import type { FailureClass } from "../pool/classify";
import { KEY_STATES, type KeyState, type Outcome } from "../pool/key-state";
import { type UsageTotals, addUsage, cacheHitRatio, emptyUsage } from "../pool/usage";
import { checkedModel } from "./model-option";
import { TakeQueue } from "./take-queue";
import { type PoolctlStatusFields, poolctlStatusFields } from "./_poolctl-status";
import type {
  KeyEvent,
  KeyStatus,
  ModelStatus,
  PoolStore,
  ReleaseResult,
  SessionUsage,
  SpendStatus,
} from "../store/types";
import type { BudgetWindow } from "../pool/budget";
import { type CompactUsageJson, compactUsageJson } from "./key-admin-service";

export interface TakeBody {
  id: string;
  token: string;
  pool: string;
  lease: string;
  expires_at: string;
}

export interface ReleaseRequest {
  lease?: string;
  id?: string;
  pool?: string;
  ok: boolean;
  status?: number;
  /** The start of the upstream's error body, for classification (≤ 4 KB). */
  error_body?: string;
  /** The upstream's Retry-After, in seconds. */
  retry_after_sec?: number;
  /** The caller's own verdict on the failure; wins over classification. */
  class?: FailureClass;
  /** Tokens the request used, counted against the pool's tpm. */
  tokens?: number;
  /** What the upstream's `usage` said, for the key's usage ledger (their sum also counts against tpm). */
  input_tokens?: number;
  output_tokens?: number;
  cached_tokens?: number;
  cache_write_tokens?: number;
  /**
   * The model the request used: prices the usage, and a failure rests (or denies) only that (key, model)
   * pair when its class is scoped to the model.
   */
  model?: string;
  /** The sticky session given to /take: the usage also counts in that session's totals. */
  session?: string;
  /** A fixed effect instead of the class's ladder: POST /health/:pool's words, never POST /release's body. */
  verdict?: Outcome["verdict"];
}

/** POST /release's answer: snake_case and ISO times, like the rest of the API. */
export interface ReleaseBody {
  /** The release was taken (poolctl's answer, kept for its clients). */
  ok: true;
  pool: string;
  id: string;
  state: KeyState;
  reason: string | null;
  /** The answer said the key cannot use the release's model: retry on another key, as after a 429. */
  model_denied?: true;
  /** The release's model on this key, when that pair cannot serve now. */
  pair?: { model: string; state: ModelStatus["state"]; until: string; reason: string | null };
}

export const DEFAULT_EVENT_LIMIT = 100;
export const DEFAULT_SESSION_LIMIT = 20;

/** Never quotes what was sent: a token in the wrong field would come straight back. */
export interface TakeRequest {
  /** A sticky session: the same id gets the same key while that key is usable. */
  session?: string;
  /** When no key is free, wait up to this many seconds for one, in line. */
  waitSec?: number;
  /** The caller went away: it leaves the line. */
  signal?: AbortSignal;
  /** The model the key is for: keys resting or denied for it, or restricted to other models, are skipped. */
  model?: string;
}

/** GET /events: transitions with ISO times. */
export interface EventsBody {
  events: Array<Omit<KeyEvent, "at" | "until"> & { at: string; until: string | null }>;
}

export interface StatusBody extends PoolctlStatusFields {
  /** Per pool: keys by state, and the last day's usage of all its keys (removed ones included). */
  pools: Record<
    string,
    { total: number; counts: Record<KeyState, number>; usage?: CompactUsageJson; spend?: SpendJson | null }
  >;
  keys: StatusRow[];
}

/** GET /sessions: a pool's live sticky sessions with the most input tokens, and their prompt-cache hit ratio. */
export interface SessionsBody {
  pool: string;
  sessions: Array<{
    session: string;
    key: string;
    requests: number;
    input_tokens: number;
    output_tokens: number;
    cached_tokens: number;
    cache_write_tokens: number;
    cache_hit_ratio: number | null;
    expires_at: string;
  }>;
}

/** One key in /status: ISO times, snake_case, the token masked. */
export interface StatusRow {
  id: string;
  pool: string;
  masked: string;
  state: KeyState;
  reason: string | null;
  until: string | null;
  weight: number;
  last_check: string | null;
  last_check_status: number | null;
  last_check_latency_ms: number | null;
  consecutive_failures: number;
  next_check_at: string | null;
  last_used: string | null;
  requests: number;
  errors: number;
  in_flight: number;
  /** The class of the key's last failure, and failures of it in a row (0 after a success). */
  class: FailureClass | null;
  rung: number;
  group: string | null;
  /** What the upstream's rate-limit headers last said is left; null until they said anything. */
  remaining: { requests: number | null; tokens: number | null; reset_at: string | null } | null;
  /** Sticky sessions whose own key this is. */
  sessions: number;
  /** The models the key cannot serve now (resting or denied), by name; ready models are not listed. */
  models: Record<string, ModelStatusJson>;
  /** The only models the key serves (the tokens file's `models=`); null: any model. */
  only_models: string[] | null;
  /** The key's usage over the last day. */
  usage?: CompactUsageJson;
  /** Spend against the key's caps (or, under a pool cap, its share); null when no cap applies. */
  spend: SpendJson | null;
}

/** Spend in the current UTC day and month, in USD, beside the cap and the requests that could not be priced. */
export type SpendJson = Record<
  BudgetWindow,
  { spent_usd: number; cap_usd: number | null; unpriced: number; resets_at: string }
>;

/** A (key, model) pair that cannot serve now, as /status shows it. */
export interface ModelStatusJson {
  state: ModelStatus["state"];
  until: string;
  reason: string | null;
}

/**
 * The broker's use cases over a store, in HTTP-free terms: routes translate requests into these
 * calls and results into responses, and never touch the store themselves.
 */
export class BrokerService {
  constructor(
    private readonly store: PoolStore,
    private readonly metrics: MetricsRecorder = noMetrics,
    /** Waiting and fallback pools; shared with the gateway so either's release wakes the other's waiters. */
    private readonly keys: TakeQueue = new TakeQueue({ store, clock: systemClock }),
  ) {}

  /** A key from the pool, or from its fallbacks (the answer's `pool` says which). */
  async take(pool?: string, request: TakeRequest = {}): Promise<TakeBody> {
    const name = this.resolvePool(pool);
    // An empty ?model= names none, as an empty ?pool= names the default.
    const model = checkedModel(request.model || undefined);
    let lease: Awaited<ReturnType<PoolStore["take"]>>;
    try {
      lease = await this.keys.take(name, {
        // A fallback pool is asked for the same name: the caller sends the model it named.
        modelIn: model === undefined ? undefined : () => model,
        session: request.session || undefined,
        waitMs: request.waitSec ? Math.round(request.waitSec * 1000) : undefined,
        signal: request.signal,
      });
    } catch (error) {
      // Only a pool that exists gets a series: a label must not be whatever a caller typed.
      if (error instanceof DomainError && error.code === "NO_KEY_AVAILABLE") this.metrics.recordTake(name, "no_key");
      throw error;
    }
    this.metrics.recordTake(lease.pool, "ok");
    return { id: lease.id, token: lease.token, pool: lease.pool, lease: lease.lease, expires_at: iso(lease.expiresAt) };
  }

  /** `ok: true` says the release was taken, as poolctl's answer did (its clients check for it). */
  async release(request: ReleaseRequest): Promise<ReleaseBody> {
    const outcome: Outcome = {
      ok: request.ok,
      status: request.status,
      body: request.error_body,
      retryAfterMs: request.retry_after_sec === undefined ? undefined : Math.round(request.retry_after_sec * 1000),
      class: request.class,
      tokens: request.tokens,
      usage:
        request.input_tokens === undefined && request.output_tokens === undefined
          ? undefined
          : {
              input: request.input_tokens ?? 0,
              output: request.output_tokens ?? 0,
              cached: request.cached_tokens,
              cacheWrite: request.cache_write_tokens,
            },
      model: checkedModel(request.model),
      session: request.session || undefined,
      verdict: request.verdict,
    };
    let result: ReleaseResult;
    if (request.lease !== undefined) result = await this.keys.release({ lease: request.lease }, outcome);
    else if (request.id !== undefined)
      result = await this.keys.release({ id: request.id, pool: request.pool }, outcome);
    else throw new DomainError("BAD_REQUEST", 'say which key you are releasing: give "lease" (from /take) or "id"');
    this.metrics.recordRequest(result.pool, result.id, outcome);
    return releaseBody(result);
  }

  /** Recent state transitions, oldest first; `since` is an ISO 8601 time or epoch milliseconds. */
  async events(query: { pool?: string; key?: string; since?: string; limit?: number }): Promise<EventsBody> {
    const events = await this.store.events({
      pool: query.pool || undefined,
      key: query.key || undefined,
      since: query.since ? parseSince(query.since) : undefined,
      limit: query.limit ?? DEFAULT_EVENT_LIMIT,
    });
    return {
      events: events.map((e) => ({ ...e, at: iso(e.at), until: e.until === null ? null : iso(e.until) })),
    };
  }

  async status(pool?: string): Promise<StatusBody> {
    const rows = await this.store.status(pool);
    const pools: StatusBody["pools"] = {};
    for (const name of pool === undefined ? this.store.poolNames() : [pool])
      pools[name] = { total: 0, counts: emptyCounts() };
    for (const row of rows) {
      const summary = (pools[row.pool] ??= { total: 0, counts: emptyCounts() });
      summary.total++;
      summary.counts[row.state]++;
    }
    // Each key's usage over the last day rides along, compact, and each pool's sum; GET /pools/:pool/usage has the rest.
    const report = (await this.store.usage({ pool, window: "day" })).keys;
    const usage = new Map(report.map((k) => [`${k.pool}\u0000${k.id}`, k.usage]));
    const poolTotals = new Map<string, UsageTotals>();
    for (const k of report)
      addUsage(poolTotals.get(k.pool) ?? poolTotals.set(k.pool, emptyUsage()).get(k.pool)!, k.usage);
    for (const [name, summary] of Object.entries(pools)) {
      summary.usage = compactUsageJson(poolTotals.get(name) ?? emptyUsage());
      summary.spend = spendJson(await this.store.poolSpend(name));
    }
    const keys = rows.map((row) => ({
      ...statusRow(row),
      usage: compactUsageJson(usage.get(`${row.pool}\u0000${row.id}`) ?? emptyUsage()),
    }));
    return { ...poolctlStatusFields(rows), pools, keys };
  }

  /** The pool's live sticky sessions with the most input tokens first, each with its prompt-cache hit ratio. */
  async sessions(pool?: string, limit = DEFAULT_SESSION_LIMIT): Promise<SessionsBody> {
    const name = this.resolvePool(pool);
    const sessions = await this.store.sessionUsage({ pool: name, limit });
    return { pool: name, sessions: sessions.map(sessionJson) };
  }

  /** With one pool, or a pool named "default", callers need not name it. */
  private resolvePool(pool?: string): string {
    if (pool !== undefined && pool !== "") return pool;
    const names = this.store.poolNames();
    if (names.includes("default")) return "default";
    if (names.length === 1) return names[0]!;
    throw new DomainError(
      "BAD_REQUEST",
      `several pools are configured (${names.join(", ")}); say which with ?pool=NAME`,
    );
  }
}

function releaseBody({ pool, id, state, reason, modelDenied, pair }: ReleaseResult): ReleaseBody {
  const body: ReleaseBody = { ok: true, pool, id, state, reason };
  if (modelDenied) body.model_denied = true;
  if (pair) body.pair = { model: pair.model, state: pair.state, until: iso(pair.until), reason: pair.reason };
  return body;
}

function sessionJson(s: SessionUsage): SessionsBody["sessions"][number] {
  return {
    session: s.session,
    key: s.keyId,
    requests: s.requests,
    input_tokens: s.inputTokens,
    output_tokens: s.outputTokens,
    cached_tokens: s.cachedTokens,
    cache_write_tokens: s.cacheWriteTokens,
    cache_hit_ratio: cacheHitRatio(s),
    expires_at: iso(s.expiresAt),
  };
}

function emptyCounts(): Record<KeyState, number> {
  return Object.fromEntries(KEY_STATES.map((s) => [s, 0])) as Record<KeyState, number>;
}

function statusRow(row: KeyStatus): StatusRow {
  return {
    id: row.id,
    pool: row.pool,
    masked: row.masked,
    state: row.state,
    reason: row.reason,
    until: row.until === null ? null : iso(row.until),
    weight: row.weight,
    last_check: row.lastCheck === null ? null : iso(row.lastCheck),
    last_check_status: row.lastCheckStatus,
    last_check_latency_ms: row.lastCheckLatencyMs,
    consecutive_failures: row.consecutiveFailures,
    next_check_at: row.nextCheckAt === null ? null : iso(row.nextCheckAt),
    last_used: row.lastUsed === null ? null : iso(row.lastUsed),
    requests: row.requests,
    errors: row.errors,
    in_flight: row.inFlight,
    class: row.failClass,
    rung: row.rung,
    group: row.group,
    remaining: row.remaining && {
      requests: row.remaining.requests,
      tokens: row.remaining.tokens,
      reset_at: row.remaining.resetAt === null ? null : iso(row.remaining.resetAt),
    },
    sessions: row.sessions,
    models: modelsJson(row.models),
    only_models: row.onlyModels,
    spend: spendJson(row.spend),
  };
}

function spendJson(spend: SpendStatus | null): SpendJson | null {
  if (!spend) return null;
  const usd = (micros: number) => Math.round(micros) / 1_000_000;
  const windowJson = (w: SpendStatus[BudgetWindow]) => ({
    spent_usd: usd(w.spentMicros),
    cap_usd: w.capMicros === null ? null : usd(w.capMicros),
    unpriced: w.unpriced,
    resets_at: iso(w.resetAt),
  });
  return { day: windowJson(spend.day), month: windowJson(spend.month) };
}

function modelsJson(models: KeyStatus["models"]): StatusRow["models"] {
  // fromEntries defines each name as an own field, whatever it is (a plain assignment of "__proto__" would not).
  return Object.fromEntries(
    Object.entries(models).map(([model, pair]) => [
      model,
      { state: pair.state, until: iso(pair.until), reason: pair.reason },
    ]),
  );
}

function parseSince(since: string): number {
  const at = /^\d+$/.test(since) ? Number(since) : Date.parse(since);
  const outOfRange = at < 0 || at > MAX_TIME_MS;
  const problem = Number.isNaN(at) ? "is not a time" : outOfRange ? "is not between 1970 and 9999" : undefined;
  if (problem) {
    const hint = "give an ISO 8601 time (2026-01-01T12:00:00Z) or epoch milliseconds";
    // Not quoted when it looks like a key (a long run of letters and digits): a secret pasted into the wrong place.
    const keyLike = /(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{16,}/.test(since);
    const shown = keyLike ? "" : ` "${since}"`;
    throw new DomainError("BAD_REQUEST", `since:${shown} ${problem} — ${hint}`);
  }
  return at;
}

/** Stored times are shown clamped, never thrown on: one odd row must not take /status or /events down. */
const iso = isoTime;
