/**
 * A key's state per model: what the stores will keep for each (key, model) pair beside the key's
 * own row, in the domain's words. A pair rests after a pair-scoped failure (see failure-scope.ts),
 * is denied when an answer said the key cannot use the model (see model-access.ts), and counts its
 * own requests and tokens against the pool's model_limits. A key with no pair for a model has
 * nothing against it for that model.
 */
import { MAX_MODEL_NAME_LENGTH } from "./bounds";
import { scrubSecrets } from "./scrub-secrets";
import { type Candidate, type Choice, chooseKey } from "./choose-key";
import { CLEAN_LADDER, type LadderPosition, formatDuration } from "./key-state";
import { EMPTY_WINDOWS, MINUTE_MS, type UsageWindows } from "./limits";
import type { FailureClass } from "./vocabulary";

export type ModelAccess = "ok" | "denied";

export interface ModelState {
  /** Epoch ms when the pair's rest (or its denial) ends; 0 when the pair is not resting. */
  readyAt: number;
  /** Why the pair rests or is denied; null when there is nothing to say. */
  reason: string | null;
  /** The pair's own ladder: pair-scoped failures climb it, a success on the model starts it over. */
  ladder: LadderPosition;
  /** "denied": the key cannot use the model; the pair is tried again once `readyAt` passes. */
  access: ModelAccess;
  /** The pair's windows for the pool's model_limits (rpm and tpm of this model on this key). */
  windows: UsageWindows;
}

export const FRESH_MODEL_STATE: ModelState = {
  readyAt: 0,
  reason: null,
  ladder: CLEAN_LADDER,
  access: "ok",
  windows: EMPTY_WINDOWS,
};

/** What a decision about a key and a model reads besides the key's own facts. */
export interface ModelFacts {
  /** The models the tokens file restricts the key to (`models=a|b`); null: any model. */
  allowedModels: ReadonlySet<string> | null;
  /** The key's pairs; a model missing here has a fresh pair. */
  models: ReadonlyMap<string, ModelState>;
}

export type PairState = "ready" | "cooling" | "denied" | "restricted";

/**
 * When the key may next serve `model`, as far as the model is concerned (the key's own condition is
 * isReady's business): 0 for now, Infinity for never (the tokens file does not list the model).
 */
export function modelReadyAt(key: ModelFacts, model: string): number {
  if (key.allowedModels !== null && !key.allowedModels.has(model)) return Number.POSITIVE_INFINITY;
  return key.models.get(model)?.readyAt ?? 0;
}

/** Whether a take for `model` may hand this key out, as far as the model is concerned (the pick's filter). */
export function isUsableForModel(key: ModelFacts, model: string, now: number): boolean {
  return modelReadyAt(key, model) <= now;
}

/** The pair as /status, /events and metrics will name it. */
export function pairStateOf(key: ModelFacts, model: string, now: number): PairState {
  if (key.allowedModels !== null && !key.allowedModels.has(model)) return "restricted";
  const pair = key.models.get(model);
  if (!pair || pair.readyAt <= now) return "ready";
  return pair.access === "denied" ? "denied" : "cooling";
}

/** One recorded change of a pair, as the planners describe it (the key's own events are PlannedEvent). */
export interface PairEvent {
  model: string;
  from: PairState;
  to: PairState;
  class: FailureClass | null;
  reason: string | null;
  until: number | null;
}

/** A pair's state as a ModelFacts of one model, for pairStateOf. */
export function onePair(model: string, pair: ModelState): ModelFacts {
  return { allowedModels: null, models: new Map([[model, pair]]) };
}

export function denialReason(what: string, restMs: number): string {
  return `no access to this model (${what}); tried again in ${formatDuration(restMs)}`;
}

/**
 * What a model name may be, wherever it comes from (a request, a tokens file, a config key): the
 * names providers use — `gpt-4o-2024-08-06`, `ft:gpt-4o:org:x:id`, `openai/gpt-4o`,
 * `anthropic.claude-3-5-sonnet-20240620-v1:0`, `claude-3@20240229` — and nothing that could break
 * a tokens-file line (`,` `|` `=`), a metric label or a log line. A name shaped like a credential
 * (`sk-…`, a JWT, a long run of letters and digits) is refused too: a client that sends its key as
 * the model would otherwise see it stored and shown in /status, /events and metric labels.
 */
export function isModelName(text: string): boolean {
  if (text.length > MAX_MODEL_NAME_LENGTH) return false;
  const known = recentNames.get(text);
  if (known !== undefined) return known;
  const verdict = MODEL_NAME.test(text) && scrubSecrets(text) === text;
  // Every gateway request asks about its model, and a pool serves a few: remembered (short names only, a
  // bounded number of them).
  if (recentNames.size >= RECENT_NAMES_KEPT) recentNames.clear();
  recentNames.set(text, verdict);
  return verdict;
}

const RECENT_NAMES_KEPT = 1024;
const recentNames = new Map<string, boolean>();

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$/;

/**
 * The reference pick for a take that names a model: chooseKey's rule over the keys that may serve the
 * model now. Stores may walk their own order, but must choose what this chooses (a test holds them to it).
 */
export function chooseKeyForModel<K extends Candidate & ModelFacts>(
  keys: readonly K[],
  choice: Choice,
  model: string,
): K | undefined {
  return chooseKey(
    keys.filter((key) => isUsableForModel(key, model, choice.now)),
    choice,
  );
}

/**
 * When a take for `model` could next succeed, for the Retry-After of a 503: the earliest moment a key
 * in rotation is rested both as a key and for the model. Infinity when no key will ever serve it by
 * itself (every key is out or does not list the model), which callers answer as they do today.
 */
export function modelReadyAtOfPool(keys: readonly (Candidate & ModelFacts)[], model: string): number {
  let earliest = Number.POSITIVE_INFINITY;
  for (const key of keys) {
    if (!key.takeable) continue;
    earliest = Math.min(earliest, Math.max(key.readyAt, modelReadyAt(key, model)));
  }
  return earliest;
}

/**
 * Whether a pair says nothing a missing pair would not: its rest is over, its access known or
 * lapsed, its ladder clean (or quiet for LADDER_MEMORY_MS) and its minute window closed. Stores drop
 * such pairs, so the pairs kept are bounded by the models that are actually resting, not by every
 * model a client ever named.
 */
export function isSpentPair(pair: ModelState, now: number): boolean {
  // Only the minute window counts: model_limits has no daily limit, so the day's count decides nothing.
  return (
    pair.readyAt <= now &&
    (pair.ladder.rung === 0 || pair.ladder.failUntil <= now - LADDER_MEMORY_MS) &&
    pair.windows.minuteStart + MINUTE_MS <= now
  );
}

/**
 * How long a pair's ladder is remembered after its last rest ended. The ladder climbs only while
 * failures keep coming; a pair quiet for this long starts at rung 1 again, as a fresh pair would.
 */
export const LADDER_MEMORY_MS = 24 * 3600_000;

/** The key's pair for `model` as decisions read it: a missing or spent pair is a fresh one. */
export function pairOf(key: ModelFacts, model: string, now: number): ModelState {
  const pair = key.models.get(model);
  return pair === undefined || isSpentPair(pair, now) ? FRESH_MODEL_STATE : pair;
}

/** A key's models as /status and `keypool status` show them: only pairs that are not ready, and restrictions. */
export function modelStatusOf(
  key: ModelFacts,
  now: number,
): { models: Record<string, { state: PairState; until: number; reason: string | null }>; onlyModels?: string[] } {
  const models: Record<string, { state: PairState; until: number; reason: string | null }> = {};
  for (const [model, pair] of key.models) {
    const state = pairStateOf(key, model, now);
    if (state === "cooling" || state === "denied") models[model] = { state, until: pair.readyAt, reason: pair.reason };
  }
  return key.allowedModels === null ? { models } : { models, onlyModels: [...key.allowedModels] };
}
