/**
 * The validated, fully defaulted configuration every other layer reads.
 * Field names are camelCase; the YAML keys they come from are snake_case (see README).
 */

import type {
  BackoffConfig,
  ClassifyRuleConfig,
  FailurePolicyConfig,
  ModelAccessConfig,
  ModelLimitsConfig,
  PriceTable,
  Rotation,
} from "../pool/vocabulary";
import type { SpendCaps } from "../pool/budget";

// The domain's words belong to src/pool; they are re-exported here for the config layer's readers.
export {
  type BackoffConfig,
  type ClassifyRuleConfig,
  FAILURE_CLASSES,
  FAILURE_SCOPES,
  type FailurePolicyConfig,
  type FailureScope,
  type ModelAccessConfig,
  type ModelAccessRuleConfig,
  type ModelLimit,
  type ModelLimitsConfig,
  SCOPED_CLASSES,
  type FailureClass,
  LADDER_CLASSES,
  type LadderClass,
  type LadderConfig,
  type ModelPrice,
  type PriceTable,
  ROTATIONS,
  type Rotation,
} from "../pool/vocabulary";

/** How a key is probed: an HTTP request or a command, never both. */
export type CheckConfig = HttpCheckConfig | CommandCheckConfig;

/** Probe tuning shared by both check kinds (optional until the checker uses it). */
export interface CheckTuning {
  /** Probes run at once across the pool. */
  concurrency?: number;
  /** How often dead and quarantined keys are re-probed. */
  reviveIntervalSec?: number;
  /** Consecutive invalid-key probes before a key is marked dead. */
  failuresToDead?: number;
  /**
   * The model the probe calls (e.g. url …/v1/models/gpt-4o): a successful probe also ends a denial of
   * that (key, model) pair.
   */
  model?: string;
}

export interface HttpCheckConfig extends CheckTuning {
  kind: "http";
  url: string;
  method: string;
  headers: Record<string, string>;
  body?: string;
  successStatus: number[];
  /** Healthy only when the response body also contains this. */
  successBody?: string;
  /** Skip TLS certificate verification (self-signed test endpoints). */
  insecure?: boolean;
  timeoutSec: number;
}

/** The environment variable a check command finds its token in; `{token}` in a shell `cmd` references it. */
export const TOKEN_VARIABLE = "KEYPOOL_TOKEN";

export interface CommandCheckConfig extends CheckTuning {
  kind: "command";
  /**
   * argv, spawned without a shell; a shell-syntax `cmd` line is `["/bin/sh", "-c", script]`. Never holds the
   * token: the command reads it from KEYPOOL_TOKEN (a script's `{token}` was rewritten to reference it).
   */
  cmd: string[];
  /** The pool's own variables for the command, on top of a small base (see health/_probe-env.ts). */
  env?: Record<string, string>;
  /** Healthy when stdout contains this; when unset, healthy on exit 0. */
  successOutput?: string;
  timeoutSec: number;
}

export interface RefreshConfig {
  enabled: boolean;
  url: string;
  method: string;
  headers: Record<string, string>;
  body?: string;
  tokenField: string;
  /** Response field holding a rotated refresh token, when the provider rotates them. */
  refreshTokenField?: string;
  /** Response field holding the new token's lifetime in seconds. */
  expiresInField?: string;
  /** Refresh this many seconds before expiry. */
  aheadSec?: number;
}

export interface UpstreamConfig {
  enabled: boolean;
  listen: string;
  baseUrl?: string;
  authHeader: string;
  authTemplate: string;
  retryOn: number[];
  maxRetries: number;
  /**
   * Retries after a 5xx or a transport failure are allowed only while they stay below this share of
   * the pool's client requests over the last 10 s (see src/gateway/retry-budget.ts); unset means 0.2.
   */
  retryBudget?: number;
  quarantineSec: number;
  cooldownSec?: number;
  timeoutSec: number;
  /** Inject the token as this query parameter (e.g. `key`) instead of a header. */
  authQuery?: string;
  /** When set, gateway clients must present one of these (Bearer or x-api-key). */
  clientKeys?: string[];
  /** Request bodies are buffered up to this size so a retry can replay them. */
  maxBodyBytes: number;
  /** Path prefix that routes a request to this pool when several pools share a listener; default `/<pool>`. */
  pathPrefix?: string;
  /** Requests whose JSON body names one of these models go to this pool. */
  models: string[];
  /** When no key is free, a request waits this long (FIFO) for one before it gets a 503; unset or 0 answers at once. */
  queueTimeoutSec?: number;
  /** Lower-case client header names forwarded besides the built-in allow-list (src/gateway/_headers.ts). */
  forwardHeaders?: string[];
}

/** Sticky sessions: one conversation keeps using one key while that key is usable (see src/pool/session.ts). */
export interface SessionConfig {
  /** false: the gateway sends no session ids to the store (the broker still honours ?session=). */
  enabled: boolean;
  /** The request header that names a session (lower-case). */
  header: string;
  /** Identify a request with no explicit id by its model and system prompt. */
  fingerprint: boolean;
  /** A mapping lapses this long after the session last used its own key. */
  ttlSec: number;
  /** Mappings kept per pool; the oldest go first. */
  max: number;
}

/** Sticky sessions as they are when a pool has no `session:` section. */
export const DEFAULT_SESSION: SessionConfig = {
  enabled: true,
  header: "x-session-id",
  fingerprint: true,
  ttlSec: 3600,
  max: 100_000,
};

/** One key as declared in a tokens file (or, later, in config or via the admin API). */
export interface KeySpec {
  id: string;
  token: string;
  weight: number;
  /** Optional label from a `group=NAME` field in the tokens file. */
  group?: string;
  /** The initial OAuth refresh token, from a `refresh_token=VALUE` field in the tokens file. */
  refreshToken?: string;
  /** The only models the key serves, from a `models=a|b` field in the tokens file; unset: any model. */
  models?: string[];
  /** The key's own spend caps (micro-USD), from `budget_day=` / `budget_month=` in the tokens file. */
  budget?: SpendCaps;
}

export interface PoolConfig {
  name: string;
  /** Absolute path of the tokens file, when the pool has one. */
  tokensFile?: string;
  /** Keys read from `tokensFile` at load time. */
  keys: KeySpec[];
  rotation: Rotation;
  cooldownSec: number;
  recheckIntervalSec: number;
  leaseTtlSec: number;
  /** In-flight leases allowed per key; undefined means unbounded. */
  maxConcurrency?: number;
  /** Requests per key per minute window; undefined means unbounded. */
  rpm?: number;
  /** Tokens per key per minute window, as reported on release; undefined means unbounded. */
  tpm?: number;
  /** Requests per key per day window; undefined means unbounded. */
  dailyRequests?: number;
  /** The pool's own failure rules, tried before the built-in ones. */
  classify?: ClassifyRuleConfig[];
  /** Per-class backoff ladders that differ from the defaults. */
  backoff?: BackoffConfig;
  /** Per class, whether a failure rests the (key, model) pair or the whole key; unset classes keep the default. */
  failurePolicy?: FailurePolicyConfig;
  /** How "this key cannot use this model" is recognised and how long the pair then stays out. */
  modelAccess?: ModelAccessConfig;
  /** Per-model rpm and tpm, counted per (key, model) pair. */
  modelLimits?: ModelLimitsConfig;
  /** The pool's spend caps (micro-USD per UTC day and month), from `budget: { day, month }` in USD. */
  budget?: SpendCaps;
  check?: CheckConfig;
  refresh?: RefreshConfig;
  /** Outbound proxy URL for probes and refresh calls. */
  proxy?: string;
  upstream?: UpstreamConfig;
  /** Sticky sessions; DEFAULT_SESSION when unset. */
  session?: SessionConfig;
  /** Pools that serve this pool's requests, in order, when it has no usable key. */
  fallback?: string[];
  /** Request models renamed when this pool serves them (typically as a fallback): `gpt-4o` → `claude-…`. */
  modelMap?: Record<string, string>;
  /** Alert (pool_below_min_live) when fewer keys than this can serve right now. */
  minLive?: number;
}

export interface ServerConfig {
  host: string;
  port: number;
  apiKey?: string;
  /**
   * Host names, besides loopback ones, that listeners on loopback without credentials answer
   * (the API without api_key, a gateway without client_keys); any other Host gets 403.
   */
  allowedHosts?: string[];
  /** Every listener (API, gateway, metrics) closes a connection idle this long (1–255 s); unset: DEFAULT_IDLE_TIMEOUT_SEC. */
  idleTimeoutSec?: number;
  /** Requests in flight each listener serves at once; more get a 503. Unset: DEFAULT_MAX_CONNECTIONS. */
  maxConnections?: number;
}

/** server.idle_timeout_sec when unset: long enough between a client's requests, short enough to reap idle sockets. */
export const DEFAULT_IDLE_TIMEOUT_SEC = 30;
/** Bun closes idle sockets on a timer of at most this many seconds. */
export const MAX_IDLE_TIMEOUT_SEC = 255;
/** server.max_connections when unset: well below common file-handle limits, well above one machine's clients. */
export const DEFAULT_MAX_CONNECTIONS = 1024;
/** The most server.max_connections may be, so that a typo cannot turn the cap off. */
export const MAX_MAX_CONNECTIONS = 65_536;

export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export const LOG_FORMATS = ["json", "text"] as const;

export interface LogConfig {
  level?: (typeof LOG_LEVELS)[number];
  format?: (typeof LOG_FORMATS)[number];
}

export interface Config {
  /** Absolute path of the file this came from, for reloads and messages. */
  source?: string;
  server: ServerConfig;
  metrics?: { addr: string };
  /** Unset fields keep the logger's defaults: info, JSON when stderr is not a terminal. */
  log?: LogConfig;
  /** SQLite file path (absolute), or ":memory:". */
  stateFile: string;
  /** poolctl's JSON state_file, when state_file names one: read once into stateFile (beside it), never written. */
  poolctlStateFile?: string;
  /** On SIGTERM/SIGINT, how long in-flight requests and streams may take to finish before they are cut (default 30). */
  shutdownTimeoutSec?: number;
  /** How the state file is kept; absent means tokens are stored unencrypted (unless KEYPOOL_MASTER_KEY is set). */
  store?: StoreConfig;
  /** Reload when the config file or a tokens file changes. */
  watch?: boolean;
  pools: Record<string, PoolConfig>;
  /** Per-model prices for the usage ledger's estimated cost; absent means costs are 0. */
  prices?: PriceTable;
  /** Webhooks told about key and pool trouble; absent means no alerts. */
  alerts?: AlertsConfig;
}

/** What an alert can be about (see src/alerts/alert.ts). */
export const ALERT_EVENTS = [
  "key_dead",
  "key_quarantined",
  "key_recovered",
  "pool_below_min_live",
  "pool_exhausted",
  "refresh_failed",
  "budget_warning",
  "budget_exhausted",
] as const;
export type AlertEvent = (typeof ALERT_EVENTS)[number];

export const ALERT_FORMATS = ["json", "slack"] as const;

export interface WebhookConfig {
  /** May carry a secret (Slack's do): only its origin is ever logged or printed. */
  url: string;
  headers: Record<string, string>;
  format: (typeof ALERT_FORMATS)[number];
  /** The events this webhook hears; every event when unset. */
  events?: AlertEvent[];
}

export interface AlertsConfig {
  /** The same event for the same key (or pool) is sent at most once per this many seconds. */
  repeatSec: number;
  webhooks: WebhookConfig[];
}

export interface StoreConfig {
  /** Absolute path of a file holding the master key that encrypts token values (see src/store/token-cipher.ts). */
  encryptionKeyFile?: string;
  /** Keep every pool's state in PostgreSQL, shared by every instance pointed at it, instead of the state file. */
  postgres?: PostgresStoreConfig;
}

export interface PostgresStoreConfig {
  /** `postgres://user:password@host:port/db`: a secret, masked wherever it is shown and never logged. */
  url: string;
  /** A take (or any store call) that cannot reach the database fails with STORE_UNAVAILABLE after this long (default 5). */
  timeoutSec: number;
  /** Connections this instance opens at most (default 10). */
  maxConnections: number;
}
