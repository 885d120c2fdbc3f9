/**
 * keypool as a library: the same pools, rotation and key states as the daemon, in-process, over
 * the same SQLite file — the daemon and any number of processes may share it.
 *
 * ```ts
 * import { openPool } from "keypool";
 * await using pool = await openPool({ keys: process.env.OPENAI_KEYS!.split(",") });
 * const answer = await pool.withKey((token) => callOpenAI(token));
 * ```
 */
import { resolve } from "node:path";
import { MAX_WEIGHT, MIN_WEIGHT } from "../pool/bounds";
import { findConfig } from "../config/find-config";
import { loadConfig, readConfigTree } from "../config/load";
import { deriveKeyId } from "../config/tokens-file";
import type { Config, KeySpec, PoolConfig, Rotation } from "../config/types";
import { poolSettingsOf } from "../daemon/pool-settings";
import { type Clock, systemClock } from "../pool/clock";
import { DomainError } from "../pool/errors";
import { KEY_STATES, type KeyState } from "../pool/key-state";
import { MASTER_KEY_ENV, loadTokenCipher } from "../store/master-key";
import { SqliteStore } from "../store/sqlite/sqlite-store";
import { createStore } from "../store/create-store";
import type { KeyStatus, Lease, ReleaseResult, TakeOptions } from "../store/types";
import { type ReportedOutcome, outcomeOfError, outcomeOfValue } from "./outcome";

export type { Config, KeyState, KeyStatus, Lease, ReleaseResult, ReportedOutcome, Rotation, TakeOptions };
export { DomainError };

/** A key given in code: its token, or the token with an id and a weight. */
export type KeyInputLike = string | { id?: string; token: string; weight?: number };

export interface OpenPoolOptions {
  /**
   * A config file path, or a Config already loaded. Default: `keypool.yaml` in the working
   * directory, else the pools the environment defines (`KEYPOOL_POOL_<NAME>_KEYS`, see README).
   * Ignored when `keys` is given.
   */
  config?: string | Config;
  /** Keys of a pool defined in code, without any config; the pool is `pool` (default "default"). */
  keys?: KeyInputLike[];
  /** Which pool to use. Default: the only pool, or the one named "default". */
  pool?: string;
  /** The SQLite file to share. Default: the config's `state_file`; with `keys`, `KEYPOOL_STATE_FILE` or ./keypool.db. */
  stateFile?: string;
  /** With `keys`: how keys are picked (default "lru"). */
  rotation?: Rotation;
  /** With `keys`: seconds a key rests after each take (default 0 here, unlike a config file's 30). */
  cooldownSec?: number;
  /** With `keys`: seconds before a lease that is never released lapses (default 300). */
  leaseTtlSec?: number;
  /** With `keys`: leases allowed on one key at a time (default unbounded; 1 makes leases exclusive). */
  maxConcurrency?: number;
  /** The master key that encrypts tokens at rest. Default: `KEYPOOL_MASTER_KEY`, else the config's `store.encryption_key_file`. */
  masterKey?: string;
  /** Time source, for tests. */
  clock?: Clock;
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
  /**
   * Takes the best available key.
   * @throws DomainError `NO_KEY_AVAILABLE` (with `retryAfterMs`) when every key is resting or out.
   */
  take(options?: TakeOptions): Promise<Lease>;
  /** Gives a lease back with how it went (default: success). A lapsed lease throws DomainError `UNKNOWN_LEASE`. */
  release(lease: Lease | string, outcome?: ReportedOutcome): Promise<ReleaseResult>;
  /** Reports how a key did, naming it by id or token; gives back its oldest lease, if it has one. */
  report(report: KeyReport): Promise<ReleaseResult>;
  status(): Promise<PoolStatus>;
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
 * Opens one pool over the shared state — a SQLite state file (created if needed), or PostgreSQL when the
 * config's `store.postgres` or KEYPOOL_DATABASE_URL names one — and brings the pool's keys in (other
 * pools in the store are left alone).
 * @throws ConfigError when the config or the keys are invalid, or the master key does not fit the file.
 */
export async function openPool(options: OpenPoolOptions = {}): Promise<KeyPool> {
  const config = resolveConfig(options);
  const pool = choosePool(config, options.pool);
  const stateFile = options.stateFile === undefined ? config.stateFile : resolveStateFile(options.stateFile);
  const env = options.masterKey === undefined ? process.env : { ...process.env, [MASTER_KEY_ENV]: options.masterKey };
  const cipher = loadTokenCipher(config, env);
  const clock = options.clock ?? systemClock;
  // An explicit state file means SQLite; otherwise the config (or KEYPOOL_DATABASE_URL) may name PostgreSQL.
  const store =
    options.stateFile === undefined ? (await createStore(config, { clock, cipher })).store : new SqliteStore({ path: stateFile, clock, cipher });
  try {
    const origin = pool.tokensFile ? ("file" as const) : ("env" as const);
    await store.syncPools([{ settings: poolSettingsOf(pool, config.prices), keys: pool.keys.map((key) => ({ ...key, origin })) }], { prune: false });
  } catch (error) {
    await store.close();
    throw error;
  }
  const name = pool.name;

  async function release(lease: Lease | string, outcome: ReportedOutcome = { ok: true }): Promise<ReleaseResult> {
    return store.release({ lease: typeof lease === "string" ? lease : lease.lease }, outcome);
  }

  return {
    name,
    take: (takeOptions) => store.take(name, takeOptions),
    release,
    async report(report) {
      const { id: givenId, token, ...outcome } = report;
      const id = givenId ?? (token === undefined ? null : await store.findKeyByToken(name, token));
      if (id === null) throw new DomainError("UNKNOWN_KEY", `pool "${name}" has no key with that ${token === undefined ? "id" : "token"}`);
      return store.release({ id, pool: name }, outcome);
    },
    async status() {
      const keys = await store.status(name);
      const counts = Object.fromEntries(KEY_STATES.map((s) => [s, 0])) as Record<KeyState, number>;
      for (const key of keys) counts[key.state]++;
      return { pool: name, total: keys.length, counts, keys };
    },
    async withKey(fn, takeOptions) {
      const lease = await store.take(name, takeOptions);
      let value: Awaited<ReturnType<typeof fn>>;
      try {
        value = await fn(lease.token, lease);
      } catch (error) {
        await releaseQuietly(lease, outcomeOfError(error, clock.now()));
        throw error;
      }
      await releaseQuietly(lease, outcomeOfValue(value, clock.now()));
      return value;
    },
    close: () => store.close(),
    [Symbol.asyncDispose]: () => store.close(),
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
  if (options.keys !== undefined) return configFromKeys(options);
  if (typeof options.config === "string") return loadConfig(options.config);
  return options.config ?? findConfig();
}

/** A pool from code, validated like a config file so its defaults and messages are the same. */
function configFromKeys(options: OpenPoolOptions): Config {
  const name = options.pool ?? "default";
  const seen = new Set<string>();
  const keys: KeySpec[] = options.keys!.map((key, index) => {
    const spec = typeof key === "string" ? { token: key } : key;
    if (typeof spec.token !== "string" || spec.token === "") throw new DomainError("BAD_REQUEST", `keys[${index}]: the token is empty`);
    if (seen.has(spec.token)) throw new DomainError("BAD_REQUEST", `keys[${index}]: the same token is given twice — remove one`);
    seen.add(spec.token);
    const weight = spec.weight ?? 1;
    // NaN fails both comparisons, so it is refused too.
    if (!(weight >= MIN_WEIGHT && weight <= MAX_WEIGHT)) {
      const range = `between ${MIN_WEIGHT} and ${MAX_WEIGHT}`;
      throw new DomainError("BAD_REQUEST", `keys[${index}].weight: expected a number ${range}`);
    }
    return { id: spec.id ?? deriveKeyId(spec.token), token: spec.token, weight };
  });
  const body: Record<string, unknown> = { cooldown_sec: options.cooldownSec ?? 0 };
  if (options.rotation !== undefined) body.rotation = options.rotation;
  if (options.leaseTtlSec !== undefined) body.lease_ttl_sec = options.leaseTtlSec;
  if (options.maxConcurrency !== undefined) body.max_concurrency = options.maxConcurrency;
  const stateFile = options.stateFile ?? process.env.KEYPOOL_STATE_FILE ?? "keypool.db";
  return readConfigTree({ state_file: stateFile, pools: { [name]: body } }, { baseDir: process.cwd(), keys: { [name]: keys } });
}

function choosePool(config: Config, wanted: string | undefined): PoolConfig {
  const names = Object.keys(config.pools);
  const name = wanted ?? (names.length === 1 ? names[0] : names.includes("default") ? "default" : undefined);
  const pool = name === undefined ? undefined : config.pools[name];
  if (!pool) {
    const which = wanted === undefined ? "several pools are configured; say which with { pool }" : `there is no pool "${wanted}"`;
    throw new DomainError("UNKNOWN_POOL", `${which} (pools: ${names.join(", ") || "none"})`);
  }
  return pool;
}

function resolveStateFile(path: string): string {
  return path === ":memory:" ? path : resolve(path);
}
