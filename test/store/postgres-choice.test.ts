import { SQL } from "bun";
import { describe, expect, it } from "bun:test";
import { type Candidate, chooseKey } from "../../src/pool/choose-key";
import { ManualClock } from "../../src/pool/clock";
import { DomainError } from "../../src/pool/errors";
import {
  FRESH_MODEL_STATE,
  type ModelFacts,
  type ModelState,
  chooseKeyForModel,
  modelReadyAtOfPool,
} from "../../src/pool/model-facts";
import { LOWEST_RANK } from "../../src/pool/rotation";
import { PostgresStore } from "../../src/store/postgres/postgres-store";
import { POSTGRES_URL, announceSkip, freshSchema } from "../helpers/postgres";
import { keys, seededRandom, settings } from "./contract/_harness";

announceSkip("test/store/postgres-choice.test.ts");

// Ids whose order differs between byte order and the usual collations (case, punctuation, accents).
const IDS = ["a", "B", "b", "_x", "A1", "a-2", "Z", "é", "a b", "k10", "k9"];
// Few ranks, so that ties are common.
const RANKS = [0, 0.25, 0.5, 0.5, 0.75, 1];
// The model takes name; another one whose pairs must not matter; names that share a prefix with it.
const MODEL = "m";
const RESTRICTIONS = [null, null, ["m"], ["m2"], ["x", "m"], ["m-mini", "mm"]];

type TrialKey = Candidate & ModelFacts & { health: string };

interface Trial {
  pool: "lru" | "random";
  start: number;
  keys: TrialKey[];
  exclude: string[];
  session?: { own: string; detour: string | null };
  /** The model the take names, if any. */
  model?: string;
}

function trial(random: () => number, now: number): Trial {
  const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)]!;
  const ids = IDS.filter(() => random() < 0.5);
  if (ids.length === 0) ids.push(pick(IDS));
  const keys = ids.map((id) => {
    const takeable = random() < 0.8;
    const maxConcurrency = pick([null, null, 1, 2]);
    const restriction = pick(RESTRICTIONS);
    const models = new Map<string, ModelState>();
    for (const model of [MODEL, "m2"]) {
      if (random() < 0.5) continue;
      const readyAt = pick([0, now - 1000, now, now + 1000, now + 5000]);
      models.set(model, { ...FRESH_MODEL_STATE, readyAt, access: random() < 0.3 ? "denied" : "ok" });
    }
    return {
      id,
      rank: pick(RANKS),
      takeable,
      health: takeable ? pick(["live", "unknown"]) : pick(["dead", "disabled"]),
      readyAt: pick([0, now - 1000, now, now + 1000, now + 3000]),
      inFlight: pick([0, 0, 1, 2]),
      maxConcurrency,
      allowedModels: restriction === null ? null : new Set(restriction),
      models,
    };
  });
  const pool = random() < 0.5 ? "lru" : "random";
  const start = pool === "random" ? pick(RANKS) : LOWEST_RANK;
  const exclude = ids.filter(() => random() < 0.15);
  const session = random() < 0.3 ? { own: pick(ids), detour: random() < 0.5 ? pick(ids) : null } : undefined;
  const model = random() < 0.6 ? MODEL : undefined;
  return { pool, start, keys, exclude, session, model };
}

/** A trial as a mismatch report shows it (sets and maps spelled out). */
function shown(t: Trial) {
  return {
    ...t,
    keys: t.keys.map((k) => ({
      ...k,
      allowedModels: k.allowedModels && [...k.allowedModels],
      models: Object.fromEntries([...k.models].map(([m, p]) => [m, { readyAt: p.readyAt, access: p.access }])),
    })),
  };
}

/** The keys a session tries first, as the store's session lookup finds them (src/store/postgres/_sessions.ts). */
function preferredOf(t: Trial): string[] {
  if (!t.session) return [];
  const own = t.keys.find((k) => k.id === t.session!.own);
  const live = own && (own.health === "live" || own.health === "unknown");
  return [live ? t.session.own : null, t.session.detour].filter((id): id is string => id !== null);
}

describe.skipIf(!POSTGRES_URL)("PostgresStore take", () => {
  it("hands out the key chooseKey picks, over random pools", async () => {
    await using schema = await freshSchema();
    const clock = new ManualClock();
    let start = 0;
    // The random rotation's walk starts at random(): the trial's start.
    const store = await PostgresStore.open({ url: schema.url, clock, random: () => start, maxConnections: 2 });
    await using sql = new SQL(schema.url, { max: 1 });
    try {
      await store.syncPools([
        { settings: settings({ name: "lru" }), keys: [] },
        { settings: settings({ name: "random", rotation: "random" }), keys: [] },
      ]);
      const random = seededRandom(17);
      const mismatches: unknown[] = [];
      let retries = 0;
      for (let i = 0; i < 600; i++) {
        const now = clock.now();
        const t = trial(random, now);
        start = t.start;
        // What the last trial's take left in the store's memory (the hot path's counts) is written
        // first, so none of it is carried onto this trial's rows.
        await store.status();
        await sql`DELETE FROM keypool_leases`;
        await sql`DELETE FROM keypool_sessions`;
        await sql`DELETE FROM keypool_keys`;
        // Inserted in a random order, so that the table's own order cannot stand in for the tie rule.
        const rows = t.keys
          .map((k) => ({ k, order: random() }))
          .sort((a, b) => a.order - b.order)
          .map(({ k }) => ({
            pool: t.pool,
            id: k.id,
            token: `sk-choice-${k.id}`,
            health: k.health,
            takeable: k.takeable,
            rank: k.rank,
            ready_at: k.readyAt,
            in_flight: k.inFlight,
            max_concurrency: k.maxConcurrency,
            models: k.allowedModels === null ? null : [...k.allowedModels].join("|"),
          }));
        await sql`INSERT INTO keypool_keys ${sql(rows)}`;
        const pairs = t.keys.flatMap((k) =>
          [...k.models].map(([model, pair]) => ({
            pool: t.pool,
            key_id: k.id,
            model,
            ready_at: pair.readyAt,
            access: pair.access,
          })),
        );
        if (pairs.length > 0) await sql`INSERT INTO keypool_key_models ${sql(pairs)}`;
        if (t.session)
          await sql`INSERT INTO keypool_sessions (pool, session, key_id, detour_id, expires_at)
                    VALUES (${t.pool}, 's', ${t.session.own}, ${t.session.detour}, ${now + 60_000})`;
        const choice = { now, start: t.start, exclude: t.exclude, preferred: preferredOf(t) };
        const expected = t.model === undefined ? chooseKey(t.keys, choice) : chooseKeyForModel(t.keys, choice, t.model);
        let taken: string | null = null;
        let retryAfterMs: number | undefined;
        try {
          const session = t.session ? "s" : undefined;
          taken = (await store.take(t.pool, { exclude: t.exclude, session, model: t.model })).id;
        } catch (error) {
          if (!(error instanceof DomainError) || error.code !== "NO_KEY_AVAILABLE") throw error;
          retryAfterMs = error.retryAfterMs;
        }
        if (taken !== (expected?.id ?? null)) mismatches.push({ trial: i, ...shown(t), expected: expected?.id, taken });
        // Nothing for the model: the retry is the soonest end of a rest keeping a key from it, when one is ahead.
        const modelAt = t.model === undefined ? Number.NaN : modelReadyAtOfPool(t.keys, t.model);
        if (taken === null && Number.isFinite(modelAt) && modelAt > now) {
          retries++;
          if (retryAfterMs !== Math.max(1000, modelAt - now))
            mismatches.push({ trial: i, ...shown(t), modelAt: modelAt - now, retryAfterMs });
        }
        clock.advance(1);
      }
      expect(mismatches).toEqual([]);
      // The trials did reach the retry for a model (the seed decides; a change of trial() may need a look).
      expect(retries).toBeGreaterThan(5);
    } finally {
      await store.close();
    }
  }, 60_000);

  it("gives a key back its place in least_busy when its lease expires unreleased", async () => {
    await using schema = await freshSchema();
    const clock = new ManualClock();
    const store = await PostgresStore.open({ url: schema.url, clock, maxConnections: 2 });
    try {
      await store.syncPools([{ settings: settings({ rotation: "least_busy", leaseTtlSec: 60 }), keys: keys(2) }]);
      const held = await store.take("default");
      clock.advance(1);
      const other = await store.take("default");
      await store.release({ lease: other.lease }, { ok: true });
      // `held` expires: its key has no lease in flight again and was used before the other one.
      clock.advance(61_000);
      expect((await store.take("default")).id).toBe(held.id);
    } finally {
      await store.close();
    }
  });
});
