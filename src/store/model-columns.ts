import type { FailureClass } from "../pool/classify";
import { EMPTY_WINDOWS } from "../pool/limits";
import {
  type ModelAccess,
  type ModelFacts,
  type ModelState,
  isSpentPair,
  modelStatusOf,
  onePair,
  pairStateOf,
} from "../pool/model-facts";
import type { PairPlan } from "../pool/plan-model";
import type { ModelStatus, ReleaseResult } from "./types";

/**
 * A (key, model) pair as both stores keep it (schema step 10: SQLite's `key_models`, PostgreSQL's
 * `keypool_key_models`). A key has a row only for the models something is known against; a pair
 * whose rest, ladder and minute window are all over is deleted (isSpentPair), so the rows stay
 * bounded by the models that are resting, not by every model a client ever named.
 */
export interface PairColumns {
  model: string;
  ready_at: number;
  reason: string | null;
  access: ModelAccess;
  fail_class: FailureClass | null;
  rung: number;
  fail_until: number;
  minute_start: number;
  minute_requests: number;
  minute_tokens: number;
}

/** The pair's columns by name, in the order both stores' tables declare them (after pool and key_id). */
export const PAIR_COLUMN_NAMES = [
  "model",
  "ready_at",
  "reason",
  "access",
  "fail_class",
  "rung",
  "fail_until",
  "minute_start",
  "minute_requests",
  "minute_tokens",
] as const satisfies ReadonlyArray<keyof PairColumns>;

/** The pair's row as the planners read it. */
export function modelStateOf(row: PairColumns): ModelState {
  return {
    readyAt: row.ready_at,
    reason: row.reason,
    access: row.access,
    ladder: { failClass: row.fail_class, rung: row.rung, failUntil: row.fail_until },
    windows: {
      ...EMPTY_WINDOWS,
      minuteStart: row.minute_start,
      minuteRequests: row.minute_requests,
      minuteTokens: row.minute_tokens,
    },
  };
}

/** A planned pair as a row to write; null when the pair says nothing and its row should go. */
export function pairColumnsOf(model: string, state: ModelState, now: number): PairColumns | null {
  if (isSpentPair(state, now)) return null;
  return {
    model,
    ready_at: state.readyAt,
    reason: state.reason,
    access: state.access,
    fail_class: state.ladder.failClass,
    rung: state.ladder.rung,
    fail_until: state.ladder.failUntil,
    minute_start: state.windows.minuteStart,
    minute_requests: state.windows.minuteRequests,
    minute_tokens: state.windows.minuteTokens,
  };
}

/**
 * The keys' `models` column: the tokens file's `models=a|b` as written (`|` cannot be in a model
 * name), or null for a key that serves any model.
 */
export function modelsColumnOf(models: readonly string[] | undefined): string | null {
  return models === undefined || models.length === 0 ? null : models.join("|");
}

const allowedCache = new Map<string, ReadonlySet<string>>();

/** The keys' `models` column as the planners read it; the sets are shared, since few distinct lists exist. */
export function allowedModelsOf(column: string | null): ReadonlySet<string> | null {
  if (column === null) return null;
  let set = allowedCache.get(column);
  if (set === undefined) {
    // Bounded by the distinct lists in tokens files; a runaway cache would only mean many lists.
    if (allowedCache.size > 10_000) allowedCache.clear();
    set = new Set(column.split("|"));
    allowedCache.set(column, set);
  }
  return set;
}

/** A key's models in the planners' words, from its `models` column and its pair rows. */
export function modelFactsOf(modelsColumn: string | null, pairs: readonly PairColumns[]): ModelFacts {
  return {
    allowedModels: allowedModelsOf(modelsColumn),
    models: new Map(pairs.map((pair) => [pair.model, modelStateOf(pair)])),
  };
}

/** What /status shows of a key's models: the pairs that cannot serve now, and the key's restriction. */
export function modelStatusColumns(
  facts: ModelFacts,
  now: number,
): { models: Record<string, ModelStatus>; onlyModels: string[] | null } {
  const { models, onlyModels } = modelStatusOf(facts, now);
  return { models: models as Record<string, ModelStatus>, onlyModels: onlyModels ?? null };
}

/** A key's models when a decision names no model, or before anything is known against any. */
export const NO_MODELS: ModelFacts = { allowedModels: null, models: new Map() };

/** A release's answer about the pair it planned: set only while the pair cannot serve. */
export function pairStatusOf(plan: PairPlan, now: number): ReleaseResult["pair"] {
  const state = pairStateOf(onePair(plan.model, plan.state), plan.model, now);
  if (state !== "cooling" && state !== "denied") return undefined;
  return { model: plan.model, state, until: plan.state.readyAt, reason: plan.state.reason };
}
