/**
 * The config of model-aware keys (issue 18): `failure_policy:` (each class's scope), `model_access:`
 * (recognising "this key cannot use this model") and `model_limits:` (per-model rpm and tpm); the
 * tokens file's `models=` field is read in tokens-file.ts. The stores keep the (key, model) pairs.
 */
import { MAX_COOLDOWN_SEC, MAX_KEY_LIMIT, MAX_MODELS } from "../pool/bounds";
import { MAX_MODEL_ACCESS_RULES } from "../pool/model-access";
import { isModelName } from "../pool/model-facts";
import { checkBodyPattern } from "./_failure-policy";
import { Section, isMapping, joinPath } from "./_fields";
import {
  FAILURE_SCOPES,
  type FailurePolicyConfig,
  type ModelAccessConfig,
  type ModelAccessRuleConfig,
  type ModelLimit,
  type ModelLimitsConfig,
  SCOPED_CLASSES,
} from "./types";

export const MODEL_AWARE_POOL_KEYS = ["failure_policy", "model_access", "model_limits"] as const;

export interface ModelAwareSettings {
  failurePolicy?: FailurePolicyConfig;
  modelAccess?: ModelAccessConfig;
  modelLimits?: ModelLimitsConfig;
}

/** A pool's model-aware settings. */
export function readModelAware(s: Section): ModelAwareSettings {
  const settings: ModelAwareSettings = {};
  const failurePolicy = readFailurePolicy(s);
  const modelAccess = readModelAccess(s);
  const modelLimits = readModelLimits(s);
  if (failurePolicy) settings.failurePolicy = failurePolicy;
  if (modelAccess) settings.modelAccess = modelAccess;
  if (modelLimits) settings.modelLimits = modelLimits;
  return settings;
}

const SCOPE_HINT = "model (rest the key for that model only) or key (rest the key for every model)";

/** `failure_policy:` — `<class>: { scope: model | key }` for the classes that rest or quarantine a key. */
export function readFailurePolicy(s: Section): FailurePolicyConfig | undefined {
  const p = s.section("failure_policy");
  if (!p) return undefined;
  const policy: FailurePolicyConfig = {};
  for (const cls of SCOPED_CLASSES) {
    const c = p.section(cls);
    if (!c) continue;
    if (c.has("scope")) policy[cls] = { scope: c.oneOf("scope", FAILURE_SCOPES, "key") };
    else c.issues.add(c.keyPath("scope"), `required — ${SCOPE_HINT}`);
    c.done();
  }
  if (p.has("client"))
    p.issues.add(p.keyPath("client"), "has no scope: a client error never rests the key or a model — remove it");
  p.done();
  return policy;
}

const ACCESS_RULE_EXAMPLE = '- { status: 404, body: "model_not_available" }';

/** `model_access:` — `rest_sec` and `rules: [{status?, body?}]`, tried before the built-in wording. */
export function readModelAccess(s: Section): ModelAccessConfig | undefined {
  const m = s.section("model_access");
  if (!m) return undefined;
  const config: ModelAccessConfig = {};
  const restSec = m.seconds("rest_sec", { positive: true, max: MAX_COOLDOWN_SEC });
  if (restSec !== undefined) config.restSec = restSec;
  const e = m.entry("rules");
  if (e && !Array.isArray(e.value)) {
    m.issues.add(e.path, `expected a list of rules, e.g. ${ACCESS_RULE_EXAMPLE}`);
  } else if (e && Array.isArray(e.value)) {
    if (e.value.length > MAX_MODEL_ACCESS_RULES)
      m.issues.add(e.path, `has ${e.value.length} rules; at most ${MAX_MODEL_ACCESS_RULES} — merge some with /a|b/`);
    config.rules = e.value.slice(0, MAX_MODEL_ACCESS_RULES).flatMap((item, i) => {
      const path = joinPath(e.path, String(i));
      if (isMapping(item)) return readAccessRule(new Section(item, path, m.issues)) ?? [];
      m.issues.add(path, `expected a rule with a status and/or body, e.g. ${ACCESS_RULE_EXAMPLE}`);
      return [];
    });
  }
  m.done();
  return config;
}

function readAccessRule(r: Section): ModelAccessRuleConfig | undefined {
  const status = r.has("status") ? r.statuses("status", []) : undefined;
  const body = r.string("body");
  if (body !== undefined) checkBodyPattern(r, body);
  if (r.has("class"))
    r.issues.add(r.keyPath("class"), "a model_access rule has no class: a match always denies the model — remove it");
  const empty = !r.has("status") && body === undefined;
  if (empty)
    r.issues.add(r.path, "needs status or body (or both) — a rule with neither would deny a model on any failure");
  r.done();
  if (empty) return undefined;
  return { ...(status && status.length > 0 ? { status } : {}), ...(body ? { body } : {}) };
}

/** `model_limits:` — model name → `{ rpm?, tpm? }`, each counted per (key, model) pair. */
export function readModelLimits(s: Section): ModelLimitsConfig | undefined {
  const e = s.entry("model_limits");
  if (!e) return undefined;
  if (!isMapping(e.value)) {
    s.issues.add(e.path, 'expected a mapping of model names to limits, e.g. { "gpt-4o": { rpm: 500, tpm: 30000 } }');
    return undefined;
  }
  const names = Object.keys(e.value);
  if (names.length > MAX_MODELS) s.issues.add(e.path, `names ${names.length} models; at most ${MAX_MODELS}`);
  const limits: Record<string, ModelLimit> = {};
  for (const name of names.slice(0, MAX_MODELS)) {
    const path = joinPath(e.path, name);
    const value = e.value[name];
    if (!isModelName(name)) {
      s.issues.add(path, "is not a model name — letters, digits and . _ : / @ + - (as the provider spells it)");
      continue;
    }
    if (!isMapping(value)) {
      s.issues.add(path, "expected { rpm, tpm } (either or both), e.g. { rpm: 500, tpm: 30000 }");
      continue;
    }
    const l = new Section(value, path, s.issues);
    const limit: ModelLimit = {};
    const rpm = l.number("rpm", { min: 1, max: MAX_KEY_LIMIT, integer: true, unit: "requests" });
    const tpm = l.number("tpm", { min: 1, max: MAX_KEY_LIMIT, integer: true, unit: "tokens" });
    if (rpm !== undefined) limit.rpm = rpm;
    if (tpm !== undefined) limit.tpm = tpm;
    if (!l.has("rpm") && !l.has("tpm")) l.issues.add(path, "needs rpm or tpm (or both) — or remove the model");
    l.done();
    limits[name] = limit;
  }
  return limits;
}
