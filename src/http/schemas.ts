import { t } from "elysia";
import { MAX_COOLDOWN_SEC, MAX_LIST_LIMIT, MAX_REQUEST_TOKENS, MAX_TAKE_WAIT_SEC } from "../pool/bounds";
import { FAILURE_CLASSES } from "../pool/classify";
import { KEY_STATES, type KeyState } from "../pool/key-state";

/**
 * Request and response shapes shared by the route groups. They validate requests and feed the
 * OpenAPI document, so each carries a description and an example.
 */

export const ErrorBody = t.Object(
  {
    error: t.Object({
      code: t.String({ description: "Stable machine-readable code", examples: ["NO_KEY_AVAILABLE"] }),
      message: t.String({
        description: "What went wrong and what to do",
        examples: ['every key in pool "default" is resting; retry after 12s'],
      }),
    }),
  },
  {
    description: "Every API error has this shape",
    examples: [
      { error: { code: "NO_KEY_AVAILABLE", message: 'every key in pool "default" is resting; retry after 12s' } },
    ],
  },
);

/** `?limit=`: a whole number 1–MAX_LIST_LIMIT (the name goes in the schema's message, see errors.ts). */
export const listLimit = (description: string) =>
  t.Numeric({
    minimum: 1,
    maximum: MAX_LIST_LIMIT,
    multipleOf: 1,
    description,
    error: `limit: expected a whole number from 1 to ${MAX_LIST_LIMIT}`,
  });

/** The error statuses a route can answer, each with the shared error body. */
export function errors(...statuses: Array<400 | 401 | 404 | 409 | 413 | 500 | 503>) {
  return Object.fromEntries(statuses.map((status) => [status, ErrorBody])) as Record<number, typeof ErrorBody>;
}

const isoTime = (description: string) =>
  t.String({ format: "date-time", description, examples: ["2026-01-01T12:00:00.000Z"] });
const nullableIsoTime = (description: string) => t.Union([isoTime(description), t.Null()]);

export const KeyStateSchema = t.UnionEnum([...KEY_STATES] as [KeyState, ...KeyState[]], {
  description:
    "unknown (never checked), live, cooling (resting until `until`), quarantined (auth failure), dead (probe says invalid), disabled (by an operator)",
  examples: ["live"],
});

export const PoolQuery = t.Object({
  pool: t.Optional(
    t.String({
      maxLength: 64,
      description: "Pool name; may be left out with one pool, or one named default",
      examples: ["default"],
    }),
  ),
});

/** The longest model a take or a release may name (a model name's own limit is longer: the wire's wins). */
const MAX_MODEL_FIELD = 200;

export const TakeQuery = t.Object({
  pool: t.Optional(
    t.String({
      maxLength: 64,
      description: "Pool name; may be left out with one pool, or one named default",
      examples: ["default"],
    }),
  ),
  session: t.Optional(
    t.String({
      maxLength: 512,
      description: "Sticky session id: the same id gets the same key while that key is usable",
      examples: ["conv-42"],
    }),
  ),
  wait: t.Optional(
    t.Numeric({
      minimum: 0,
      maximum: MAX_TAKE_WAIT_SEC,
      description: "When no key is free, wait up to this many seconds for one (first come, first served), then 503",
      examples: [10],
      error: `wait: expected a number of seconds from 0 to ${MAX_TAKE_WAIT_SEC}`,
    }),
  ),
  model: t.Optional(
    t.String({
      maxLength: MAX_MODEL_FIELD,
      description:
        "The model the key is for: keys resting or denied for that model, or restricted to other models, are skipped",
      examples: ["gpt-4o-mini"],
    }),
  ),
});

export const TakeBody = t.Object(
  {
    id: t.String({ description: "Key id (from the tokens file)", examples: ["a"] }),
    token: t.String({
      description: "The secret itself: the only place it leaves keypool",
      examples: ["sk-test-aaaaaaaaaaaaaaaaaaaaaaaa"],
    }),
    pool: t.String({ examples: ["default"] }),
    lease: t.String({ description: "Give this back to POST /release", examples: ["ls_3f9a1c0d2b"] }),
    expires_at: isoTime("When the lease lapses by itself if never released"),
  },
  {
    examples: [
      {
        id: "a",
        token: "sk-test-aaaaaaaaaaaaaaaaaaaaaaaa",
        pool: "default",
        lease: "ls_3f9a1c0d2b",
        expires_at: "2026-01-01T12:05:00.000Z",
      },
    ],
  },
);

export const ReleaseRequest = t.Object(
  {
    lease: t.Optional(
      t.String({ minLength: 1, maxLength: 128, description: "The lease from /take", examples: ["ls_3f9a1c0d2b"] }),
    ),
    id: t.Optional(
      t.String({ minLength: 1, maxLength: 128, description: "Or the key id, when there is no lease", examples: ["a"] }),
    ),
    pool: t.Optional(t.String({ maxLength: 64, description: "With id: the key's pool", examples: ["default"] })),
    ok: t.Boolean({ description: "Whether the key worked" }),
    status: t.Optional(
      t.Integer({
        minimum: 100,
        maximum: 599,
        description: "The upstream's HTTP status: 429 rests the key, 401/403 quarantine it",
        examples: [429],
      }),
    ),
    error_body: t.Optional(
      t.String({
        maxLength: 4096,
        description: "The start of the upstream's error body (≤ 4 KB): classifies the failure, e.g. insufficient_quota",
        examples: ['{"error":{"code":"insufficient_quota"}}'],
      }),
    ),
    retry_after_sec: t.Optional(
      t.Number({
        minimum: 0,
        maximum: MAX_COOLDOWN_SEC,
        description: `The upstream's Retry-After: replaces the first backoff rung (at most ${MAX_COOLDOWN_SEC}: 7 days)`,
        examples: [20],
      }),
    ),
    // Literals, not t.UnionEnum: Elysia fills an absent optional UnionEnum with its first value.
    class: t.Optional(
      t.Union(
        FAILURE_CLASSES.map((c) => t.Literal(c)),
        { description: "Your own verdict on the failure; wins over classification", examples: ["rate_limit"] },
      ),
    ),
    tokens: t.Optional(
      t.Integer({
        minimum: 0,
        maximum: MAX_REQUEST_TOKENS,
        description: "Tokens the request used, counted against the pool's tpm",
        examples: [1200],
      }),
    ),
    input_tokens: t.Optional(
      t.Integer({
        minimum: 0,
        maximum: MAX_REQUEST_TOKENS,
        description:
          "The upstream's usage: input tokens, for the key's usage and cost (input + output also count against tpm)",
        examples: [1000],
      }),
    ),
    output_tokens: t.Optional(
      t.Integer({
        minimum: 0,
        maximum: MAX_REQUEST_TOKENS,
        description: "The upstream's usage: output tokens",
        examples: [200],
      }),
    ),
    cached_tokens: t.Optional(
      t.Integer({
        minimum: 0,
        maximum: MAX_REQUEST_TOKENS,
        description: "Input tokens served from the provider's prompt cache (a part of input_tokens)",
        examples: [0],
      }),
    ),
    cache_write_tokens: t.Optional(
      t.Integer({
        minimum: 0,
        maximum: MAX_REQUEST_TOKENS,
        description: "Input tokens written to the provider's prompt cache (a part of input_tokens)",
        examples: [0],
      }),
    ),
    session: t.Optional(
      t.String({
        minLength: 1,
        maxLength: 512,
        description: "The session given to /take: the usage is added to that session's totals (GET /sessions)",
        examples: ["conv-42"],
      }),
    ),
    model: t.Optional(
      t.String({
        maxLength: MAX_MODEL_FIELD,
        description:
          "The model used: prices the usage from the config's prices, and scopes the outcome to the (key, model) pair — " +
          "a rate limit rests only that pair, an answer saying the key lacks the model denies it (see model_denied)",
        examples: ["gpt-4o-mini"],
      }),
    ),
  },
  { additionalProperties: false, examples: [{ lease: "ls_3f9a1c0d2b", ok: false, status: 429 }] },
);

export const ReleaseResult = t.Object(
  {
    ok: t.Literal(true, { description: "The release was taken (poolctl's answer, kept for its clients)" }),
    pool: t.String({ examples: ["default"] }),
    id: t.String({ examples: ["a"] }),
    state: KeyStateSchema,
    reason: t.Union([t.String(), t.Null()], {
      description: "Why the key is in its state",
      examples: ["cooling after HTTP 429"],
    }),
    model_denied: t.Optional(
      t.Literal(true, {
        description: "The answer said the key cannot use the release's model: retry on another key, as after a 429",
      }),
    ),
    pair: t.Optional(
      t.Object(
        {
          model: t.String({ examples: ["gpt-4o"] }),
          state: t.UnionEnum(["cooling", "denied"], {
            description:
              "cooling (resting until `until`) or denied (the key cannot use the model; tried again at `until`)",
          }),
          until: isoTime("When the pair may serve the model again"),
          reason: t.Union([t.String(), t.Null()]),
        },
        { description: "The release's model on this key, when that (key, model) pair cannot serve now" },
      ),
    ),
  },
  {
    examples: [
      { ok: true, pool: "default", id: "a", state: "cooling", reason: "cooling after HTTP 429" },
      {
        ok: true,
        pool: "default",
        id: "a",
        state: "live",
        reason: null,
        pair: {
          model: "gpt-4o",
          state: "cooling",
          until: "2026-01-01T12:01:00.000Z",
          reason: "rate_limit (HTTP 429); rung 1, resting 1m",
        },
      },
    ],
  },
);

const nullableNumber = (description: string) => t.Union([t.Number(), t.Null()], { description });

const COMPACT_USAGE_EXAMPLE = {
  requests: 120,
  success_rate: 0.975,
  input_tokens: 48210,
  output_tokens: 9120,
  cached_tokens: 30720,
  cache_write_tokens: 4096,
  cache_hit_ratio: 0.6372,
  cost_usd: 0.0127,
};

/** The per-key (and per-pool) usage /status shows: the last 24 hours. */
export const CompactUsageJson = t.Object(
  {
    requests: t.Integer(),
    success_rate: t.Union([t.Number(), t.Null()]),
    input_tokens: t.Integer({ description: "Every prompt token, cached or not" }),
    output_tokens: t.Integer(),
    cached_tokens: t.Integer({ description: "Input tokens read from the provider's prompt cache" }),
    cache_write_tokens: t.Integer({ description: "Input tokens written to the provider's prompt cache" }),
    cache_hit_ratio: t.Union([t.Number(), t.Null()], {
      description: "cached_tokens / input_tokens; null before any input",
    }),
    cost_usd: t.Number(),
  },
  { description: "Usage over the last day (see GET /pools/:pool/usage for more)", examples: [COMPACT_USAGE_EXAMPLE] },
);

/** A (key, model) pair that cannot serve now; ready pairs are not listed. */
const ModelStatusJson = t.Object({
  state: t.UnionEnum(["cooling", "denied"], {
    description: "cooling: resting after a failure on this model; denied: the upstream said the key cannot use it",
  }),
  until: isoTime("When the pair may serve again (a denied pair is tried again then)"),
  reason: t.Union([t.String(), t.Null()], { examples: ["rate_limit (HTTP 429); rung 1, resting 1m"] }),
});

const SpendWindowJson = t.Object({
  spent_usd: t.Number({ description: "Spent in the window at the configured prices, USD", examples: [8.42] }),
  cap_usd: t.Union([t.Number(), t.Null()], { description: "The cap for the window; null: none", examples: [10] }),
  unpriced: t.Integer({
    description: "Requests whose cost is unknown (no price for the model, or no usage reported): never counted as $0",
    examples: [0],
  }),
  resets_at: t.String({ format: "date-time", description: "When the window starts over (00:00 UTC, the 1st)" }),
});

/** Spend in the current UTC day and month. */
const SpendJson = t.Object({ day: SpendWindowJson, month: SpendWindowJson });

export const KeyRow = t.Object({
  id: t.String({ examples: ["a"] }),
  pool: t.String({ examples: ["default"] }),
  masked: t.String({ description: "The token, masked", examples: ["sk-…aaaa"] }),
  state: KeyStateSchema,
  reason: t.Union([t.String(), t.Null()], { examples: ["cooling after HTTP 429"] }),
  until: nullableIsoTime("When the state ends by itself (cooling, timed quarantine)"),
  weight: t.Number({ examples: [1] }),
  last_check: nullableIsoTime("Last health check"),
  last_check_status: nullableNumber("HTTP status of the last check"),
  last_check_latency_ms: nullableNumber("Latency of the last check"),
  consecutive_failures: t.Number({ examples: [0] }),
  next_check_at: nullableIsoTime("When the checker probes the key next"),
  last_used: nullableIsoTime("Last take"),
  requests: t.Number({ examples: [42] }),
  errors: t.Number({ examples: [1] }),
  in_flight: t.Number({ description: "Leases not yet released", examples: [0] }),
  class: t.Union([t.UnionEnum([...FAILURE_CLASSES]), t.Null()], {
    description: "The class of the last failure; null after a success",
    examples: ["rate_limit"],
  }),
  rung: t.Number({
    description: "Failures of that class in a row: the backoff rung (0 after a success)",
    examples: [2],
  }),
  group: t.Union([t.String(), t.Null()], {
    description: "Quota group: a rate limit on one key rests them all",
    examples: ["acme"],
  }),
  remaining: t.Union(
    [
      t.Object({
        requests: nullableNumber("Requests left, per the upstream's rate-limit headers"),
        tokens: nullableNumber("Tokens left"),
        reset_at: nullableIsoTime("When the budget is full again"),
      }),
      t.Null(),
    ],
    { description: "The upstream's rate-limit budget for this key; null until its headers said anything" },
  ),
  sessions: t.Optional(t.Number({ description: "Sticky sessions whose own key this is", examples: [3] })),
  models: t.Record(t.String(), ModelStatusJson, {
    description:
      "The models this key cannot serve now, by name: resting after a failure scoped to the model, or denied " +
      "(the upstream said the key cannot use it); models not listed are ready",
    examples: [
      {
        "gpt-4o": {
          state: "cooling",
          until: "2026-01-01T12:01:00.000Z",
          reason: "rate_limit (HTTP 429); rung 1, resting 1m",
        },
      },
    ],
  }),
  only_models: t.Union([t.Array(t.String()), t.Null()], {
    description: "The only models the key serves (the tokens file's models=); null: any model",
    examples: [["gpt-4o", "gpt-4o-mini"]],
  }),
  usage: t.Optional(CompactUsageJson),
  spend: t.Optional(
    t.Union([SpendJson, t.Null()], {
      description: "Spend against the key's caps (budget_day=/budget_month=, or its pool's budget); null: no cap",
    }),
  ),
});

export const StateCounts = t.Object(
  Object.fromEntries(KEY_STATES.map((s) => [s, t.Number()])) as Record<
    (typeof KEY_STATES)[number],
    ReturnType<typeof t.Number>
  >,
);

const poolctlTime = (description: string) =>
  t.String({
    format: "date-time",
    description: `${description}; 0001-01-01T00:00:00Z when never (as poolctl wrote it)`,
  });

/** poolctl's /status fields, over every key shown, with poolctl's meanings. */
const PoolctlStatusFields = {
  total: t.Number({ description: "Keys shown (poolctl's field)" }),
  live: t.Number({ description: "Keys last found live, resting or not (poolctl's field)" }),
  dead: t.Number({ description: "Keys found invalid, or disabled (poolctl's field)" }),
  unknown: t.Number({ description: "Keys never checked (poolctl's field)" }),
  quarantined: t.Number({ description: "Keys out after an auth failure (poolctl's field)" }),
  cooling: t.Number({ description: "Keys in a rest that ends by itself (poolctl's field)" }),
  tokens: t.Array(
    t.Object({
      id: t.String(),
      pool: t.String(),
      weight: t.Number(),
      status: t.UnionEnum(["live", "dead", "unknown", "quarantined"]),
      last_check: poolctlTime("Last health check"),
      last_used: poolctlTime("Last take"),
      cooling: t.Boolean({ description: "Resting until `until` (see keys)" }),
      fails: t.Number({ description: "Reported failures in a row (the backoff rung)" }),
      requests: t.Number(),
      errors: t.Number(),
      last_status: t.Number({ description: "HTTP status of the last check; 0 when none" }),
    }),
    { description: "Every key as poolctl showed it (no token); keypool's own view is `keys`" },
  ),
};

/** One pool as Key Pool Manager's `GET /status` shows it (`models`). */
const CompatModel = t.Object({
  totalKeys: t.Integer(),
  health: t.Object(
    { healthy: t.Integer(), degraded: t.Integer(), failed: t.Integer(), rate_limited: t.Integer() },
    {
      description:
        "failed: quarantined, dead or disabled; rate_limited and degraded: resting after such a failure; " +
        "healthy: the rest",
    },
  ),
  currentIndex: t.Integer({
    description: "The position after the key last handed out or reported on: where a round-robin would go next",
  }),
  stats: t.Object({
    totalRequests: t.Integer({ description: "Keys handed out, ever (every key of the pool)" }),
    successRate: t.String({
      description: "Share of the outcomes reported over the last day that were successes (100% before any)",
      examples: ["96.67%"],
    }),
  }),
});

export const StatusBody = t.Object(
  {
    ...PoolctlStatusFields,
    status: t.Optional(t.Literal("ok", { description: "Key Pool Manager's field: always ok when the daemon answers" })),
    timestamp: t.Optional(t.Integer({ description: "Key Pool Manager's field: when the answer was made (epoch ms)" })),
    models: t.Optional(
      t.Record(t.String(), CompatModel, { description: "Key Pool Manager's view of each pool (named as the model)" }),
    ),
    pools: t.Record(
      t.String(),
      t.Object({
        total: t.Number(),
        counts: StateCounts,
        usage: t.Optional(CompactUsageJson),
        spend: t.Optional(
          t.Union([SpendJson, t.Null()], { description: "The pool's total against its budget:; null: no cap" }),
        ),
      }),
      {
        description: "Per pool: keys by state, and the last day's usage of every key (removed keys included)",
      },
    ),
    keys: t.Array(KeyRow),
  },
  {
    examples: [
      {
        pools: {
          default: { total: 1, counts: { unknown: 0, live: 0, cooling: 1, quarantined: 0, dead: 0, disabled: 0 } },
        },
        keys: [
          {
            id: "a",
            pool: "default",
            masked: "sk-…aaaa",
            state: "cooling",
            reason: "cooling after HTTP 429",
            until: "2026-01-01T12:01:00.000Z",
            weight: 1,
            last_check: null,
            last_check_status: null,
            last_check_latency_ms: null,
            consecutive_failures: 0,
            next_check_at: null,
            last_used: "2026-01-01T12:00:00.000Z",
            requests: 42,
            errors: 1,
            in_flight: 0,
            models: {},
            only_models: null,
          },
        ],
      },
    ],
  },
);

export const ReloadReport = t.Object(
  {
    ok: t.Literal(true, { description: "The config was re-read (poolctl's answer, kept for its clients)" }),
    pools: t.Record(
      t.String(),
      t.Object({ added: t.Number(), updated: t.Number(), removed: t.Number(), kept: t.Number() }),
    ),
  },
  { examples: [{ ok: true, pools: { default: { added: 1, updated: 0, removed: 0, kept: 2 } } }] },
);
