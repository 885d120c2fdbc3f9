/**
 * keypool as a library: the same pools, rotation, key states and fallback pools as the daemon,
 * in-process. State lives in memory unless a state file (or a config naming one) is given; a state
 * file is the same SQLite file the daemon uses, and any number of processes may share it.
 *
 * ```ts
 * import { openPool } from "keypool";
 * await using pool = await openPool({ keys: process.env.OPENAI_KEYS!.split(",") });
 * const answer = await pool.withKey((token) => callOpenAI(token));
 * ```
 */
import { resolve } from "node:path";
import { MAX_WEIGHT, MIN_WEIGHT } from "../pool/bounds";
import { fallbackChains, modelServedAs } from "../config/fallback";
import { findConfig } from "../config/find-config";
import { loadConfig, readConfigTree } from "../config/load";
import { deriveKeyId } from "../pool/token-rules";
import type { BackoffConfig, ClassifyRuleConfig, Config, KeySpec, LadderConfig, PoolConfig } from "../config/types";
import type { Rotation } from "../config/types";
import { poolSettingsOf } from "../daemon/pool-settings";
import { type Clock, systemClock } from "../pool/clock";
import { DomainError } from "../pool/errors";
import { KEY_STATES, type KeyState } from "../pool/key-state";
import { isModelName } from "../pool/model-facts";
import { MASTER_KEY_ENV, loadTokenCipher } from "../store/master-key";
import { SqliteStore } from "../store/sqlite/sqlite-store";
import { createStore } from "../store/create-store";
import { checkedModel } from "../broker/model-option";
import { TakeQueue } from "../broker/take-queue";
import type { KeyStatus, Lease, ReleaseResult, ReleaseTarget, TakeOptions as StoreTakeOptions } from "../store/types";
import { type ReportedOutcome, outcomeOfError, outcomeOfValue } from "./outcome";

export type {
  BackoffConfig,
  ClassifyRuleConfig,
  Config,
  KeyState,
  KeyStatus,
  Lease,
  ReleaseResult,
  ReportedOutcome,
  Rotation,
};
export { DomainError };

/** A key given in code: its token, or the token with an id and a weight. */
export type KeyInputLike = string | { id?: string; token: string; weight?: number };

/** Where state lives when no state file is given: in this process, gone when it ends. */
export const IN_MEMORY = ":memory:";

/** A pool defined in code: its keys and, optionally, how it rotates, rests and falls back. */
export interface PoolInCode {
  keys: KeyInputLike[];
  /** Pools (of these `pools`) that serve this one's takes, in order, when it has no usable key. */
  fallback?: string[];
  /** Model names this pool's provider uses instead of the caller's: see `modelFor`. */
  modelMap?: Record<string, string>;
  /** How keys are picked (default "lru"). */
  rotation?: Rotation;
  /** Seconds a key rests after each take (default 0 here, unlike a config file's 30). */
  cooldownSec?: number;
  /** Seconds before a lease that is never released lapses (default 300). */
  leaseTtlSec?: number;
  /** Leases allowed on one key at a time (default unbounded; 1 makes leases exclusive). */
  maxConcurrency?: number;
  /** Per failure class, the rest ladder's changes from the defaults (as the config's `backoff:`). */
  backoff?: BackoffConfig;
  /** Rules tried before the built-in ones (as the config's `classify:`), e.g. `{ status: [403], class: "quota" }`. */
  classify?: ClassifyRuleConfig[];
}

export interface OpenPoolOptions extends Omit<PoolInCode, "keys" | "fallback" | "modelMap"> {
  /**
   * A config file path, or a Config already loaded. Default: `keypool.yaml` in the working
   * directory, else the pools the environment defines (`KEYPOOL_POOL_<NAME>_KEYS`, see README).
   * Ignored when `keys` or `pools` is given.
   */
  config?: string | Config;
  /** Keys of one pool defined in code, without any config; the pool is `pool` (default "default"). */
  keys?: KeyInputLike[];
  /** Several pools defined in code, e.g. one per provider with `fallback` between them; open one with `pool`. */
  pools?: Record<string, PoolInCode>;
  /** Which pool to use. Default: the only pool, or the one named "default". */
  pool?: string;
  /**
   * The SQLite state file, shared with a daemon or other processes and kept across restarts.
   * Default: the config's `state_file`; with `keys` or `pools`, `KEYPOOL_STATE_FILE`, else none —
   * state is kept in memory and nothing is written to disk.
   */
  stateFile?: string;
  /** The master key that encrypts tokens at rest. Default: `KEYPOOL_MASTER_KEY`, else the config's `store.encryption_key_file`. */
  masterKey?: string;
  /** Time source, for tests. */
  clock?: Clock;
}

/**
 * How to take a key: keys to avoid, a sticky session, the model it is for (keys resting or denied for
 * that model are skipped; a fallback pool is asked for its `modelMap` name), and how long to wait for one.
 */
export interface TakeOptions extends StoreTakeOptions {
  /**
   * When no key of the chain is free, wait up to this long for one, in line with this pool's other
   * waiters (first come, first served), instead of throwing at once. A release through this pool
   * hands the key on at once; a key whose rest ends is noticed within a quarter of a second.
   */
  waitMs?: number;
  /** Aborting it takes the caller out of line (the take rejects with the signal's reason). */
  signal?: AbortSignal;
}

/** One pool's keys by state, and each key as `keypool status` shows it (tokens masked). */
export interface PoolStatus {
  pool: string;
  total: number;
  counts: Record<KeyState, number>;
  keys: KeyStatus[];
}

/** A report about a key without a lease in hand: which key (by id or token), and how it went. */
export type KeyReport = ReportedOutcome & ({ id: string; token?: never } | { token: string; id?: never });

export interface KeyPool extends AsyncDisposable {
  /** The pool's name. */
  readonly name: string;
  /** The pool, then its fallback pools in the order a take tries them (as the daemon tries them). */
  readonly chain: readonly string[];
  /**
   * Takes the best available key from the pool or, when it has none, from its fallbacks:
   * `lease.pool` says which.
   * @throws DomainError `NO_KEY_AVAILABLE` (with `retryAfterMs`) when every key of every pool in the chain
   * is resting or out (and stays so for `waitMs`); `BUDGET_EXHAUSTED` (retryAfterMs: the time to the reset, at
   * once whatever `waitMs`) when every pool of the chain has spent its `budget:`.
   */
  take(options?: TakeOptions): Promise<Lease>;
  /** Gives a lease back with how it went (default: success). A lapsed lease throws DomainError `UNKNOWN_LEASE`. */
  release(lease: Lease | string, outcome?: ReportedOutcome): Promise<ReleaseResult>;
  /** Reports how a key of the chain did, naming it by id or token; gives back its oldest lease, if it has one. */
  report(report: KeyReport): Promise<ReleaseResult>;
  /** The pool's keys (or another pool's of the chain). */
  status(pool?: string): Promise<PoolStatus>;
  /**
   * The model name to send with a lease's key: the serving pool's `model_map` entry for `model`
   * (a fallback provider's name for it), else `model` itself — what the gateway writes into the body.
   */
  modelFor(lease: Lease, model: string): string;
  /**
   * Takes a key, runs `fn(token, lease)` and releases the key with what happened: a returned value
   * is a success (a returned `Response` counts by its status); a thrown error with an HTTP status
   * (`status`, `statusCode` or `response.status`) is reported as that status, any other throw as a
   * network failure. The error is rethrown, the value returned.
   */
  withKey<T>(fn: (token: string, lease: Lease) => T | Promise<T>, options?: TakeOptions): Promise<T>;
  /** Closes the state file. Leases still out lapse after their TTL. */
  close(): Promise<void>;
}

/**
 * Opens one pool — in memory, over a SQLite state file (created if needed), or over PostgreSQL when
 * the config's `store.postgres` or KEYPOOL_DATABASE_URL names one — and brings the keys of the pool
 * and its fallback pools in (other pools in the store are left alone).
 * @throws ConfigError when the config or the keys are invalid, or the master key does not fit the file.
 */
export async function openPool(options: OpenPoolOptions = {}): Promise<KeyPool> {
  const config = resolveConfig(options);
  const pool = choosePool(config, options.pool);
  const name = pool.name;
  const chain = fallbackChains(config.pools).get(name) ?? [name];
  const stateFile = options.stateFile === undefined ? config.stateFile : resolveStateFile(options.stateFile);
  const env = options.masterKey === undefined ? process.env : { ...process.env, [MASTER_KEY_ENV]: options.masterKey };
  const cipher = loadTokenCipher(config, env);
  const clock = options.clock ?? systemClock;
  // An explicit state file means SQLite; otherwise the config (or KEYPOOL_DATABASE_URL) may name PostgreSQL.
  const store =
    options.stateFile === undefined
      ? (await createStore(config, { clock, cipher })).store
      : new SqliteStore({ path: stateFile, clock, cipher });
  try {
    await store.syncPools(
      chain.map((member) => {
        const own = config.pools[member]!;
        const origin = own.tokensFile ? ("file" as const) : ("env" as const);
        return { settings: poolSettingsOf(own, config.prices), keys: own.keys.map((key) => ({ ...key, origin })) };
      }),
      { prune: false },
    );
  } catch (error) {
    await store.close();
    throw error;
  }
  // The daemon's own take path: the same chain, tried the same way (see TakeQueue.take).
  const keys = new TakeQueue({ store, clock, chainOf: () => chain });
  const modelFor = (lease: Pick<Lease, "pool">, model: string) =>
    modelServedAs(config.pools[lease.pool]?.modelMap, model);
  // As the gateway asks: a model_map name that is no model name is no model to keep a pair for.
  const modelInPool = (pool: string, model: string) => {
    const sent = modelFor({ pool }, model);
    return isModelName(sent) ? sent : undefined;
  };
  // A key tried is avoided in whichever pool of the chain holds it; a model is asked of each pool by the
  // name that pool's provider uses (its model_map).
  const take = async ({ session, exclude, waitMs, signal, model }: TakeOptions = {}) => {
    const named = checkedModel(model);
    return keys.take(name, {
      session,
      waitMs,
      signal,
      exclude: exclude && Object.fromEntries(chain.map((p) => [p, exclude])),
      modelIn: named === undefined ? undefined : (pool) => modelInPool(pool, named),
    });
  };

  async function release(lease: Lease | string, outcome: ReportedOutcome = { ok: true }): Promise<ReleaseResult> {
    const checked = outcome.model === undefined ? outcome : { ...outcome, model: checkedModel(outcome.model) };
    return keys.release({ lease: typeof lease === "string" ? lease : lease.lease }, checked);
  }

  /** The first pool of the chain that knows the key; its own pool's answer when none does. */
  async function releaseKey(report: KeyReport): Promise<ReleaseResult> {
    const { id: givenId, token, ...reported } = report;
    const outcome = reported.model === undefined ? reported : { ...reported, model: checkedModel(reported.model) };
    for (const member of chain) {
      const id = givenId ?? (token === undefined ? null : await store.findKeyByToken(member, token));
      if (id === null) continue;
      const target: ReleaseTarget = { id, pool: member };
      try {
        return await keys.release(target, outcome);
      } catch (error) {
        if (!(error instanceof DomainError) || error.code !== "UNKNOWN_KEY" || member === chain.at(-1)) throw error;
      }
    }
    const where = chain.length > 1 ? `pool "${name}" and its fallbacks have` : `pool "${name}" has`;
    throw new DomainError("UNKNOWN_KEY", `${where} no key with that ${token === undefined ? "id" : "token"}`);
  }

  async function close(): Promise<void> {
    keys.stop();
    await store.close();
  }

  return {
    name,
    chain,
    take,
    release,
    report: releaseKey,
    async status(member = name) {
      if (!chain.includes(member)) {
        const fallbacks = chain.slice(1).join(", ") || "none";
        throw new DomainError("UNKNOWN_POOL", `pool "${member}" is neither "${name}" nor its fallback (${fallbacks})`);
      }
      const keys = await store.status(member);
      const counts = Object.fromEntries(KEY_STATES.map((s) => [s, 0])) as Record<KeyState, number>;
      for (const key of keys) counts[key.state]++;
      return { pool: member, total: keys.length, counts, keys };
    },
    modelFor,
    async withKey(fn, takeOptions) {
      const lease = await take(takeOptions);
      // What happened is the taken model's: a rate limit on it rests only that (key, model) pair.
      const model = takeOptions?.model ? modelInPool(lease.pool, takeOptions.model) : undefined;
      const withModel = (outcome: ReportedOutcome) => (model === undefined ? outcome : { ...outcome, model });
      let value: Awaited<ReturnType<typeof fn>>;
      try {
        value = await fn(lease.token, lease);
      } catch (error) {
        await releaseQuietly(lease, withModel(outcomeOfError(error, clock.now())));
        throw error;
      }
      await releaseQuietly(lease, withModel(outcomeOfValue(value, clock.now())));
      return value;
    },
    close,
    [Symbol.asyncDispose]: close,
  };

  // A lease that lapsed while `fn` ran, or a key a reload removed, must not turn the caller's result into an error.
  async function releaseQuietly(lease: Lease, outcome: ReportedOutcome): Promise<void> {
    try {
      await release(lease, outcome);
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
    }
  }
}

function resolveConfig(options: OpenPoolOptions): Config {
  if (options.keys !== undefined && options.pools !== undefined) {
    throw new DomainError("BAD_REQUEST", "give either keys (one pool) or pools (several), not both");
  }
  if (options.keys !== undefined) {
    const { keys, rotation, cooldownSec, leaseTtlSec, maxConcurrency, backoff, classify } = options;
    const pool = { keys, rotation, cooldownSec, leaseTtlSec, maxConcurrency, backoff, classify };
    return configFromCode({ [options.pool ?? "default"]: pool }, options, "");
  }
  if (options.pools !== undefined) return configFromCode(options.pools, options, "pools.");
  if (typeof options.config === "string") return loadConfig(options.config);
  return options.config ?? findConfig();
}

/**
 * Pools from code, validated like a config file so their defaults and messages are the same (a
 * fallback naming no pool, or looping back, is refused as it would be in a file).
 */
function configFromCode(pools: Record<string, PoolInCode>, options: OpenPoolOptions, where: string): Config {
  const tree: Record<string, Record<string, unknown>> = {};
  const keys: Record<string, KeySpec[]> = {};
  for (const [name, pool] of Object.entries(pools)) {
    keys[name] = keysFromCode(pool.keys, where === "" ? "keys" : `${where}${name}.keys`);
    tree[name] = poolTree(pool);
  }
  const stateFile = options.stateFile ?? process.env.KEYPOOL_STATE_FILE ?? IN_MEMORY;
  return readConfigTree({ state_file: stateFile, pools: tree }, { baseDir: process.cwd(), keys });
}

function keysFromCode(given: KeyInputLike[], where: string): KeySpec[] {
  const seen = new Set<string>();
  return given.map((key, index) => {
    const spec = typeof key === "string" ? { token: key } : key;
    if (typeof spec.token !== "string" || spec.token === "") {
      throw new DomainError("BAD_REQUEST", `${where}[${index}]: the token is empty`);
    }
    if (seen.has(spec.token)) {
      throw new DomainError("BAD_REQUEST", `${where}[${index}]: the same token is given twice — remove one`);
    }
    seen.add(spec.token);
    const weight = spec.weight ?? 1;
    // NaN fails both comparisons, so it is refused too.
    if (!(weight >= MIN_WEIGHT && weight <= MAX_WEIGHT)) {
      const range = `between ${MIN_WEIGHT} and ${MAX_WEIGHT}`;
      throw new DomainError("BAD_REQUEST", `keys[${index}].weight: expected a number ${range}`);
    }
    return { id: spec.id ?? deriveKeyId(spec.token), token: spec.token, weight };
  });
}

/** A pool in code as the config file would write it. */
function poolTree(pool: PoolInCode): Record<string, unknown> {
  const body: Record<string, unknown> = { cooldown_sec: pool.cooldownSec ?? 0 };
  if (pool.rotation !== undefined) body.rotation = pool.rotation;
  if (pool.leaseTtlSec !== undefined) body.lease_ttl_sec = pool.leaseTtlSec;
  if (pool.maxConcurrency !== undefined) body.max_concurrency = pool.maxConcurrency;
  if (pool.fallback !== undefined) body.fallback = pool.fallback;
  if (pool.modelMap !== undefined) body.model_map = pool.modelMap;
  if (pool.classify !== undefined) body.classify = pool.classify;
  if (pool.backoff !== undefined) {
    const ladders = Object.entries(pool.backoff).map(([cls, ladder]) => [cls, ladderTree(ladder ?? {})]);
    body.backoff = Object.fromEntries(ladders);
  }
  return body;
}

function ladderTree(ladder: LadderConfig): Record<string, number> {
  const fields = { base_sec: ladder.baseSec, factor: ladder.factor, step_sec: ladder.stepSec, max_sec: ladder.maxSec };
  const given = Object.entries(fields).filter((entry): entry is [string, number] => entry[1] !== undefined);
  return Object.fromEntries(given);
}

function choosePool(config: Config, wanted: string | undefined): PoolConfig {
  const names = Object.keys(config.pools);
  const name = wanted ?? (names.length === 1 ? names[0] : names.includes("default") ? "default" : undefined);
  const pool = name === undefined ? undefined : config.pools[name];
  if (!pool) {
    const which =
      wanted === undefined ? "several pools are configured; say which with { pool }" : `there is no pool "${wanted}"`;
    throw new DomainError("UNKNOWN_POOL", `${which} (pools: ${names.join(", ") || "none"})`);
  }
  return pool;
}

function resolveStateFile(path: string): string {
  return path === ":memory:" ? path : resolve(path);
}
