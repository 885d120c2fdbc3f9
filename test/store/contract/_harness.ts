import { afterEach } from "bun:test";
import { type Clock, ManualClock } from "../../../src/pool/clock";
import { DomainError } from "../../../src/pool/errors";
import type { TokenCipher } from "../../../src/store/token-cipher";
import type { KeyInput, PoolSettings, PoolStore } from "../../../src/store/types";

export interface OpenOptions {
  clock: Clock;
  random?: () => number;
  cipher?: TokenCipher;
}

/** Where one test's state lives: a SQLite file, a PostgreSQL schema. Every store opened on it sees the same pools. */
export interface Backing extends AsyncDisposable {
  open(options: OpenOptions): Promise<PoolStore>;
}

export type MakeBacking = () => Promise<Backing>;

export function settings(overrides: Partial<PoolSettings> = {}): PoolSettings {
  return { name: "default", rotation: "lru", cooldownSec: 0, leaseTtlSec: 300, recheckIntervalSec: 300, ...overrides };
}

export function keys(
  n: number,
  options: { weight?: (i: number) => number; group?: (i: number) => string | undefined } = {},
): KeyInput[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `k${i}`,
    token: `sk-test-${String(i).padStart(20, "0")}`,
    weight: options.weight?.(i) ?? 1,
    group: options.group?.(i),
  }));
}

export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/** The DomainError a call fails with. */
export async function failure(promise: Promise<unknown>): Promise<DomainError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof DomainError) return error;
    throw error;
  }
  throw new Error("expected the call to fail");
}

export async function noKey(promise: Promise<unknown>): Promise<DomainError> {
  const error = await failure(promise);
  if (error.code !== "NO_KEY_AVAILABLE") throw error;
  return error;
}

/** Takes and gives back at once; the key id it got. */
export async function use(store: PoolStore, options: Parameters<PoolStore["take"]>[1] = {}): Promise<string> {
  const lease = await store.take("default", options);
  await store.release({ lease: lease.lease }, { ok: true });
  return lease.id;
}

/**
 * Opens stores for one contract suite; every backing a test made is disposed after it
 * (its stores closed, its file or schema removed).
 */
export class Harness {
  private readonly open: Backing[] = [];

  constructor(private readonly make: MakeBacking) {
    afterEach(async () => {
      for (const backing of this.open.splice(0)) await backing[Symbol.asyncDispose]();
    });
  }

  async backing(): Promise<Backing> {
    const backing = await this.make();
    this.open.push(backing);
    return backing;
  }

  /** A synced store on a fresh backing; jitter off (random() = 0) unless given. */
  async openStore(
    pool: PoolSettings = settings(),
    keyList: KeyInput[] = keys(3),
    options: Partial<OpenOptions> & { backing?: Backing } = {},
  ) {
    const clock = (options.clock as ManualClock | undefined) ?? new ManualClock();
    const backing = options.backing ?? (await this.backing());
    const store = await backing.open({ clock, random: options.random ?? (() => 0), cipher: options.cipher });
    await store.syncPools([{ settings: pool, keys: keyList }]);
    return { store, clock, backing };
  }
}
