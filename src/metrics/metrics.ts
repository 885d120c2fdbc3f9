import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { Clock } from "../pool/clock";
import { KEY_STATES } from "../pool/key-state";
import type { Outcome } from "../pool/key-state";
import type { KeyStatus, PoolStore, SpendStatus } from "../store/types";
import type { BudgetWindow, SpendView } from "../pool/budget";
import { CounterTally } from "./counter-tally";
import { HistogramTally } from "./histogram-tally";
import { type MinuteCount, MinuteSeries } from "./minute-series";
import { MODEL_SERIES_PER_POOL, OTHER_MODELS, modelPairSeries } from "./model-series";
import { remainingQuotas } from "./ratelimit-headers";
import type { TokenUsage } from "./usage-meter";

export type TakeOutcome = "ok" | "no_key";
/** Named like the failure classes in src/pool/classify.ts, decided here from the status alone. */
export type RequestClass =
  | "ok"
  | "client"
  | "rate_limit"
  | "quota"
  | "auth"
  | "overloaded"
  | "timeout"
  | "network"
  | "failed";
export type CheckResult = "ok" | "auth" | "rate_limit" | "failed";
export type UpstreamPhase = "first_byte" | "total";

/**
 * What the rest of keypool tells the metrics, in its own words. Labels are pool names and key
 * ids, never tokens: a label is public to anyone who can scrape.
 */
export interface MetricsRecorder {
  recordTake(pool: string, outcome: TakeOutcome): void;
  /** One use of a key, by the gateway (each attempt) or a broker client (each release). */
  recordRequest(pool: string, key: string, outcome: Outcome): void;
  recordRetry(pool: string): void;
  observeUpstream(pool: string, phase: UpstreamPhase, seconds: number): void;
  /** Reads the upstream's rate-limit headers for what the key has left. */
  recordRateLimits(pool: string, key: string, headers: Headers): void;
  recordCheck(pool: string, result: { ok: boolean; status?: number }): void;
  recordTokens(pool: string, key: string, usage: TokenUsage): void;
}

export interface PoolActivity {
  /** The last hour, oldest minute first. */
  minutes: MinuteCount[];
}

/** A daemon's metrics: the recorder plus its own Prometheus registry (one per daemon, never global). */
export interface Metrics extends MetricsRecorder {
  readonly registry: Registry;
  /** The Prometheus text exposition, with `keypool_keys` and the model gauges computed from the store now. */
  scrape(): Promise<string>;
  readonly contentType: string;
  /** Requests and errors per minute over the last hour, per pool, for the dashboard. */
  activity(pools: string[]): Record<string, PoolActivity>;
}

/** For code run without a daemon (tests, the library): records nothing. */
export const noMetrics: MetricsRecorder = {
  recordTake() {},
  recordRequest() {},
  recordRetry() {},
  observeUpstream() {},
  recordRateLimits() {},
  recordCheck() {},
  recordTokens() {},
};

/** LLM calls run from milliseconds (cached, errors) to minutes (long generations). */
const DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export function createMetrics(deps: { store: PoolStore; clock: Clock }): Metrics {
  const { store, clock } = deps;
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });

  // The gauges read from the store share one read per scrape: a scrape starts every gauge's collect at
  // once, so they all join the read in flight, and the next scrape starts a new one.
  let reading: Promise<StoreSnapshot> | undefined;
  const snapshotNow = () =>
    (reading ??= readSnapshot(store).finally(() => {
      reading = undefined;
    }));

  new Gauge({
    name: "keypool_keys",
    help: "Keys per pool and state, read from the store at scrape time.",
    labelNames: ["pool", "state"] as const,
    registers,
    async collect() {
      const { rows } = await snapshotNow();
      this.reset();
      for (const pool of store.poolNames()) for (const state of KEY_STATES) this.set({ pool, state }, 0);
      for (const row of rows) this.inc({ pool: row.pool, state: row.state });
    },
  });
  new Gauge({
    name: "keypool_model_pairs",
    help: "(key, model) pairs that cannot serve now, per pool and state (cooling or denied), read at scrape time.",
    labelNames: ["pool", "state"] as const,
    registers,
    async collect() {
      const { pairs } = (await snapshotNow()).models;
      this.reset();
      for (const { pool, state, value } of pairs) this.set({ pool, state }, value);
    },
  });
  new Gauge({
    name: "keypool_model_keys",
    help:
      `Keys resting (cooling) or denied for a model, per pool; at most ${MODEL_SERIES_PER_POOL} models a pool, ` +
      `the others summed as model="${OTHER_MODELS}".`,
    labelNames: ["pool", "model", "state"] as const,
    registers,
    async collect() {
      const { byModel } = (await snapshotNow()).models;
      this.reset();
      for (const { pool, model, state, value } of byModel) this.set({ pool, model, state }, value);
    },
  });
  // Spend against caps: only capped keys and pools have series (key "" is the pool's own total), so
  // the count is bounded by the keys, like every per-key series.
  new Gauge({
    name: "keypool_spend_usd",
    help: 'Spend in the current UTC day or month of each capped key and pool (key="": the pool\'s total), at scrape time.',
    labelNames: ["pool", "key", "window"] as const,
    registers,
    async collect() {
      this.reset();
      for (const s of (await snapshotNow()).spend) this.set(s.labels, s.view.spentMicros / 1_000_000);
    },
  });
  new Gauge({
    name: "keypool_budget_usd",
    help: 'The cap of each capped key and pool per UTC day or month (key="": the pool\'s own), in USD.',
    labelNames: ["pool", "key", "window"] as const,
    registers,
    async collect() {
      this.reset();
      for (const s of (await snapshotNow()).spend)
        if (s.view.capMicros !== null) this.set(s.labels, s.view.capMicros / 1_000_000);
    },
  });
  new Gauge({
    name: "keypool_unpriced_requests",
    help: "Requests under a cap whose cost is unknown (no price for the model, or no usage), this UTC day or month.",
    labelNames: ["pool", "key", "window"] as const,
    registers,
    async collect() {
      this.reset();
      for (const s of (await snapshotNow()).spend) this.set(s.labels, s.view.unpriced);
    },
  });
  // Counted on every take and release, so tallied first and handed to prom-client when read.
  const takes = new CounterTally({
    name: "keypool_takes_total",
    help: "Keys asked of the store, by whether one was handed out.",
    labelNames: ["pool", "outcome"],
    registers,
  });
  const requests = new CounterTally({
    name: "keypool_requests_total",
    help: "Uses of a key (gateway attempts and broker releases), by outcome class.",
    labelNames: ["pool", "key", "class"],
    registers,
  });
  const retries = new Counter({
    name: "keypool_retries_total",
    help: "Gateway attempts made on another key after a failure.",
    labelNames: ["pool"] as const,
    registers,
  });
  // Observed twice per gateway request: tallied as the counters are.
  const upstream = new HistogramTally({
    name: "keypool_upstream_duration_seconds",
    help: "Gateway upstream time: to the response headers (first_byte) and to the end of the body (total).",
    labelNames: ["pool", "phase"],
    buckets: DURATION_BUCKETS,
    registers,
  });
  const remaining = new Gauge({
    name: "keypool_ratelimit_remaining",
    help: "What the upstream last said a key has left, from its rate-limit response headers.",
    labelNames: ["pool", "key", "kind"] as const,
    registers,
  });
  const checks = new Counter({
    name: "keypool_checks_total",
    help: "Health-check probes, by result.",
    labelNames: ["pool", "result"] as const,
    registers,
  });
  // Counted on every answer that reports usage: tallied like takes and requests.
  const tokens = new CounterTally({
    name: "keypool_tokens_total",
    help: "LLM tokens reported in upstream responses' usage, by direction.",
    labelNames: ["pool", "key", "direction"],
    registers,
  });

  const cachedTokens = new CounterTally({
    name: "keypool_cached_tokens_total",
    help: "Prompt-cache input tokens reported in upstream responses' usage: read from the cache, or written to it.",
    labelNames: ["pool", "key", "kind"],
    registers,
  });

  const series = new MinuteSeries();

  return {
    registry,
    contentType: registry.contentType,
    scrape: () => registry.metrics(),
    activity(pools) {
      const now = clock.now();
      return Object.fromEntries(pools.map((pool) => [pool, { minutes: series.last(pool, now) }]));
    },
    recordTake(pool, outcome) {
      takes.add(pool, outcome);
    },
    recordRequest(pool, key, outcome) {
      const kind = requestClass(outcome);
      requests.add(pool, key, kind);
      series.record(pool, kind !== "ok" && kind !== "client", clock.now());
    },
    recordRetry(pool) {
      retries.inc({ pool });
    },
    observeUpstream(pool, phase, seconds) {
      upstream.observe(seconds, pool, phase);
    },
    recordRateLimits(pool, key, headers) {
      for (const { kind, value } of remainingQuotas(headers)) remaining.set({ pool, key, kind }, value);
    },
    recordCheck(pool, result) {
      checks.inc({ pool, result: checkResult(result) });
    },
    recordTokens(pool, key, usage) {
      tokens.addBy(usage.input, pool, key, "input");
      tokens.addBy(usage.output, pool, key, "output");
      if (usage.cached) cachedTokens.addBy(usage.cached, pool, key, "read");
      if (usage.cacheWrite) cachedTokens.addBy(usage.cacheWrite, pool, key, "write");
    },
  };
}

interface StoreSnapshot {
  rows: KeyStatus[];
  models: ReturnType<typeof modelPairSeries>;
  spend: SpendSeries[];
}

interface SpendSeries {
  labels: { pool: string; key: string; window: BudgetWindow };
  view: SpendView;
}

async function readSnapshot(store: PoolStore): Promise<StoreSnapshot> {
  const pools = store.poolNames();
  const [rows, poolSpend] = await Promise.all([
    store.status(),
    Promise.all(pools.map((pool) => store.poolSpend(pool).catch(() => null))),
  ]);
  const spend: SpendSeries[] = [];
  const add = (pool: string, key: string, status: SpendStatus | null) => {
    for (const window of ["day", "month"] as const)
      if (status) spend.push({ labels: { pool, key, window }, view: status[window] });
  };
  for (const [i, pool] of pools.entries()) add(pool, "", poolSpend[i] ?? null);
  for (const row of rows) add(row.pool, row.id, row.spend);
  return { rows, models: modelPairSeries(rows, pools), spend };
}

/** The `class` label: what kind of answer a use of a key got. Client errors are not the key's fault. */
export function requestClass(outcome: Outcome): RequestClass {
  // A caller's own verdict (the gateway's, for instance) wins, as it does in the store.
  if (!outcome.ok && outcome.class) return outcome.class;
  const status = outcome.status;
  if (status === undefined) {
    if (outcome.ok) return "ok";
    if (!outcome.error) return "failed";
    return /timeout|no response within/i.test(outcome.error) ? "timeout" : "network";
  }
  if (status === 429) return "rate_limit";
  if (status === 401 || status === 403) return "auth";
  if (status === 402) return "quota";
  if (status === 408) return "timeout";
  if (status >= 500) return "overloaded";
  if (status >= 400) return "client";
  return outcome.ok ? "ok" : "failed";
}

function checkResult(result: { ok: boolean; status?: number }): CheckResult {
  if (result.ok) return "ok";
  if (result.status === 401 || result.status === 403) return "auth";
  if (result.status === 429) return "rate_limit";
  return "failed";
}
