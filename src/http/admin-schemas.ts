import { t } from "elysia";
import { MAX_BUDGET_USD, MAX_KEY_LIMIT, MAX_WEIGHT, MIN_WEIGHT } from "../pool/bounds";
import { FAILURE_BUCKETS } from "../pool/usage";
import { KeyStateSchema } from "./schemas";

/** Request and response shapes of the key administration and usage routes. */

export const KEY_ID_PATTERN = "^[A-Za-z0-9._:-]{1,128}$";
export const GROUP_PATTERN = "^[A-Za-z0-9._:-]{1,64}$";

const limit = (description: string, example: number) =>
  t.Optional(
    t.Union([t.Integer({ minimum: 1, maximum: MAX_KEY_LIMIT }), t.Null()], {
      description: `${description} (1–${MAX_KEY_LIMIT}); null goes back to the pool's`,
      examples: [example],
    }),
  );

/** Under weighted rotation a key's share; other rotations keep it for when the pool switches. */
const weight = (description: string) =>
  t.Number({
    minimum: MIN_WEIGHT,
    maximum: MAX_WEIGHT,
    description: `${description} (${MIN_WEIGHT}–${MAX_WEIGHT})`,
    examples: [2],
  });

export const KeyLimitsBody = t.Object(
  {
    max_concurrency: limit("Leases allowed on the key at once", 4),
    rpm: limit("Requests per minute window", 60),
    tpm: limit("Tokens per minute window", 100000),
    daily_requests: limit("Requests per day window", 10000),
  },
  { additionalProperties: false, description: "The key's own limits; they win over the pool's" },
);

const cap = (window: "day" | "month", example: number) =>
  t.Optional(
    t.Union([t.Number({ exclusiveMinimum: 0, maximum: MAX_BUDGET_USD }), t.Null()], {
      description: `USD the key may spend per UTC ${window} (> 0, ≤ ${MAX_BUDGET_USD}); null: no cap`,
      examples: [example],
      error: `budget.${window}: expected an amount of USD > 0 and ≤ ${MAX_BUDGET_USD} (e.g. ${example}), or null for no cap`,
    }),
  );

export const KeyBudgetBody = t.Object(
  { day: cap("day", 10), month: cap("month", 200) },
  {
    additionalProperties: false,
    description:
      "The key's own spend caps: at a spent cap it rests until the window resets (00:00 UTC, the 1st of the month); an absent window keeps its cap",
  },
);

export const KeyBudgetJson = t.Object(
  {
    day: t.Union([t.Number(), t.Null()], { description: "USD per UTC day; null: no cap", examples: [10] }),
    month: t.Union([t.Number(), t.Null()], { description: "USD per UTC month; null: no cap", examples: [null] }),
  },
  { description: "The key's own spend caps (null: none)" },
);

const nullableInt = (description: string, example: number) =>
  t.Union([t.Integer(), t.Null()], { description, examples: [example] });

export const KeyLimitsJson = t.Object(
  {
    max_concurrency: nullableInt("null: the pool's", 4),
    rpm: nullableInt("null: the pool's", 60),
    tpm: nullableInt("null: the pool's", 100000),
    daily_requests: nullableInt("null: the pool's", 10000),
  },
  { description: "The key's own limits (null: the pool's)" },
);

export const PoolKeyParams = t.Object({
  pool: t.String({ maxLength: 64, description: "Pool name", examples: ["default"] }),
  id: t.String({ maxLength: 128, description: "Key id", examples: ["team-b"] }),
});

export const PoolParams = t.Object({
  pool: t.String({ maxLength: 64, description: "Pool name", examples: ["default"] }),
});

export const NewKeyBody = t.Object(
  {
    id: t.Optional(
      t.String({
        pattern: KEY_ID_PATTERN,
        description: "1–128 of A-Z a-z 0-9 . _ : - (default: derived from the token, as in a tokens file)",
        examples: ["team-b"],
      }),
    ),
    token: t.String({
      minLength: 1,
      maxLength: 8192,
      description: "The secret; stored (encrypted with a master key) and never shown again",
      examples: ["sk-live-0123456789abcdefghij"],
    }),
    weight: t.Optional(weight("Share of traffic under weighted rotation (default 1)")),
    group: t.Optional(
      t.String({
        pattern: GROUP_PATTERN,
        description: "Quota group: a rate limit on one key rests them all",
        examples: ["acme"],
      }),
    ),
    limits: t.Optional(KeyLimitsBody),
    budget: t.Optional(KeyBudgetBody),
  },
  {
    additionalProperties: false,
    examples: [
      { id: "team-b", token: "sk-live-0123456789abcdefghij", weight: 2, limits: { rpm: 60 }, budget: { day: 10 } },
    ],
  },
);

export const KeyChangesBody = t.Object(
  {
    enabled: t.Optional(
      t.Boolean({ description: "false: never handed out until enabled again (allowed on every key)" }),
    ),
    weight: t.Optional(weight("Share of traffic under weighted rotation")),
    group: t.Optional(
      t.Union([t.String({ pattern: GROUP_PATTERN }), t.Null()], {
        description: "null leaves the group",
        examples: ["acme"],
      }),
    ),
    limits: t.Optional(KeyLimitsBody),
    budget: t.Optional(KeyBudgetBody),
  },
  {
    additionalProperties: false,
    examples: [
      { enabled: false },
      { weight: 2, limits: { rpm: null, tpm: 50000 } },
      { budget: { day: 25, month: null } },
    ],
  },
);

const KEY_EXAMPLE = {
  pool: "default",
  id: "team-b",
  masked: "sk-…ghij",
  origin: "api",
  state: "live",
  reason: null,
  enabled: true,
  weight: 2,
  group: null,
  limits: { max_concurrency: null, rpm: 60, tpm: null, daily_requests: null },
  in_flight: 0,
  budget: { day: 10, month: null },
};

export const AdminKeyJson = t.Object(
  {
    pool: t.String({ examples: ["default"] }),
    id: t.String({ examples: ["team-b"] }),
    masked: t.String({ description: "The token, masked", examples: ["sk-…ghij"] }),
    origin: t.UnionEnum(["file", "api", "env"], {
      description: "file/env: the config owns the key (only enabled may change); api: added through this API",
      examples: ["api"],
    }),
    state: KeyStateSchema,
    reason: t.Union([t.String(), t.Null()], { examples: ["disabled by operator"] }),
    enabled: t.Boolean(),
    weight: t.Number({ examples: [1] }),
    group: t.Union([t.String(), t.Null()], { examples: ["acme"] }),
    limits: KeyLimitsJson,
    in_flight: t.Integer({ examples: [0] }),
    budget: KeyBudgetJson,
  },
  { examples: [KEY_EXAMPLE] },
);

export const KeyListJson = t.Object(
  { pool: t.String(), keys: t.Array(AdminKeyJson) },
  { examples: [{ pool: "default", keys: [KEY_EXAMPLE] }] },
);

export const RemovedJson = t.Object(
  { pool: t.String(), id: t.String(), removed: t.Literal(true) },
  { examples: [{ pool: "default", id: "team-b", removed: true }] },
);

export const PoolsJson = t.Object(
  {
    pools: t.Array(
      t.Object({
        name: t.String({ examples: ["default"] }),
        keys: t.Integer({ examples: [3] }),
        origins: t.Object(
          { file: t.Integer(), api: t.Integer(), env: t.Integer() },
          { description: "Keys by where they came from" },
        ),
        takeable: t.Integer({
          description: "Keys live or unknown and not resting: could be handed out now",
          examples: [2],
        }),
        tokens_file: t.Union([t.String(), t.Null()], {
          description: "The file that owns the pool's file keys",
          examples: ["/etc/keypool/tokens.txt"],
        }),
      }),
    ),
  },
  {
    examples: [
      {
        pools: [
          {
            name: "default",
            keys: 3,
            origins: { file: 2, api: 1, env: 0 },
            takeable: 2,
            tokens_file: "/etc/keypool/tokens.txt",
          },
        ],
      },
    ],
  },
);

const USAGE_EXAMPLE = {
  requests: 120,
  successes: 117,
  failures: { rate_limit: 2, quota: 0, auth: 0, overloaded: 1, timeout: 0, network: 0, client: 0, other: 0 },
  success_rate: 0.975,
  input_tokens: 48210,
  output_tokens: 9120,
  cached_tokens: 30720,
  cache_write_tokens: 4096,
  cache_hit_ratio: 0.6372,
  cost_usd: 0.012704,
};

export const UsageJson = t.Object(
  {
    requests: t.Integer({ description: "Outcomes reported (each gateway attempt is one)" }),
    successes: t.Integer(),
    failures: t.Object(Object.fromEntries(FAILURE_BUCKETS.map((b) => [b, t.Integer()])), {
      description: "Failures by class; other: unclassified",
    }),
    success_rate: t.Union([t.Number(), t.Null()], { description: "successes / requests; null before any request" }),
    input_tokens: t.Integer(),
    output_tokens: t.Integer(),
    cached_tokens: t.Integer({
      description: "Input tokens served from the provider's prompt cache (a part of input_tokens)",
    }),
    cache_write_tokens: t.Integer({
      description:
        "Input tokens written to the provider's prompt cache (Anthropic's cache_creation_input_tokens; a part of input_tokens)",
    }),
    cache_hit_ratio: t.Union([t.Number(), t.Null()], {
      description: "cached_tokens / input_tokens; null before any input",
    }),
    cost_usd: t.Number({ description: "Estimated from the config's prices (0 for models without one)" }),
  },
  { examples: [USAGE_EXAMPLE] },
);

export const UsageQueryJson = t.Object({
  // Literals, not t.UnionEnum: Elysia fills an absent optional UnionEnum with its first value.
  window: t.Optional(
    t.Union([t.Literal("hour"), t.Literal("day"), t.Literal("all")], {
      description: "hour: buckets overlapping the last 60 min; day: the last 24 h; all: lifetime (default day)",
      examples: ["day"],
    }),
  ),
});

export const PoolUsageJson = t.Object(
  {
    pool: t.String(),
    window: t.UnionEnum(["hour", "day", "all"]),
    since: t.Union([t.String({ format: "date-time" }), t.Null()], {
      description: "The first hourly bucket counted; null for all",
    }),
    totals: UsageJson,
    keys: t.Array(
      t.Object({
        id: t.String(),
        present: t.Boolean({ description: "false: the key was removed; its usage still counts in totals" }),
        usage: UsageJson,
      }),
    ),
  },
  {
    examples: [
      {
        pool: "default",
        window: "day",
        since: "2026-01-01T11:00:00.000Z",
        totals: USAGE_EXAMPLE,
        keys: [{ id: "team-b", present: true, usage: USAGE_EXAMPLE }],
      },
    ],
  },
);
