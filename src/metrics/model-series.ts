import { isModelName } from "../pool/model-facts";
import type { KeyStatus, ModelStatus } from "../store/types";

/**
 * The per-model series of a scrape, bounded whatever models clients name. Only pairs that cannot serve
 * now are counted (a ready pair is not kept by the stores, so there is nothing to count), and per pool at
 * most MODEL_SERIES_PER_POOL models get series of their own: a client naming a new model per request
 * can add no more than that to a scrape.
 */

export type PairSeriesState = ModelStatus["state"];
export const PAIR_SERIES_STATES: readonly PairSeriesState[] = ["cooling", "denied"];

/** Models with series of their own, per pool: those with the most keys resting or denied for them. */
export const MODEL_SERIES_PER_POOL = 20;

/** The model label the models past the cap share: no model is named so (a model name starts with a letter or digit). */
export const OTHER_MODELS = "_other";

export interface PairCount {
  pool: string;
  state: PairSeriesState;
  value: number;
}

export interface ModelPairCount extends PairCount {
  model: string;
}

/** Every pool's pairs by state (zero included), and keys per (pool, model, state), capped per pool. */
export function modelPairSeries(
  rows: readonly KeyStatus[],
  pools: readonly string[],
  cap = MODEL_SERIES_PER_POOL,
): { pairs: PairCount[]; byModel: ModelPairCount[] } {
  const perPool = new Map<string, Map<string, Record<PairSeriesState, number>>>();
  for (const pool of pools) perPool.set(pool, new Map());
  for (const row of rows) {
    const models = perPool.get(row.pool) ?? perPool.set(row.pool, new Map()).get(row.pool)!;
    for (const [model, pair] of Object.entries(row.models)) {
      // The stores keep only model names; anything else is counted, never used as a label.
      const name = isModelName(model) ? model : OTHER_MODELS;
      const counts = models.get(name) ?? models.set(name, { cooling: 0, denied: 0 }).get(name)!;
      counts[pair.state]++;
    }
  }
  const pairs: PairCount[] = [];
  const byModel: ModelPairCount[] = [];
  for (const [pool, models] of perPool) {
    const total: Record<PairSeriesState, number> = { cooling: 0, denied: 0 };
    for (const [model, counts] of capped(models, cap)) {
      for (const state of PAIR_SERIES_STATES) {
        total[state] += counts[state];
        if (counts[state] > 0) byModel.push({ pool, model, state, value: counts[state] });
      }
    }
    for (const state of PAIR_SERIES_STATES) pairs.push({ pool, state, value: total[state] });
  }
  return { pairs, byModel };
}

/**
 * The `cap` models with the most pairs keep their own counts (ties go to the name first in code-point
 * order, so the choice is stable between scrapes); the others are summed under OTHER_MODELS.
 */
function capped(
  models: ReadonlyMap<string, Record<PairSeriesState, number>>,
  cap: number,
): Array<[string, Record<PairSeriesState, number>]> {
  const sum = (c: Record<PairSeriesState, number>) => c.cooling + c.denied;
  const ranked = [...models].sort(([a, ca], [b, cb]) => sum(cb) - sum(ca) || (a < b ? -1 : a > b ? 1 : 0));
  const own = ranked.filter(([model]) => model !== OTHER_MODELS).slice(0, cap);
  const kept = new Set(own.map(([model]) => model));
  const other: Record<PairSeriesState, number> = { cooling: 0, denied: 0 };
  for (const [model, counts] of ranked) {
    if (kept.has(model)) continue;
    other.cooling += counts.cooling;
    other.denied += counts.denied;
  }
  return sum(other) > 0 ? [...own, [OTHER_MODELS, other]] : own;
}
