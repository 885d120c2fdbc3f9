import { MAX_BACKOFF_FACTOR } from "../pool/bounds";
import { isMapping, joinPath, Section } from "./_fields";
import {
  type BackoffConfig,
  type ClassifyRuleConfig,
  FAILURE_CLASSES,
  LADDER_CLASSES,
  type LadderConfig,
} from "./types";

const RULE_EXAMPLE = '- { status: 403, body: "quota", class: quota }';

/** `classify:` — a list of `{status?, body?, class}` rules, tried before the built-in ones. */
export function readClassify(s: Section): ClassifyRuleConfig[] | undefined {
  const e = s.entry("classify");
  if (!e) return undefined;
  if (!Array.isArray(e.value)) {
    s.issues.add(e.path, `expected a list of rules, e.g. ${RULE_EXAMPLE}`);
    return undefined;
  }
  const rules: ClassifyRuleConfig[] = [];
  e.value.forEach((item, i) => {
    const path = joinPath(e.path, String(i));
    if (!isMapping(item)) {
      s.issues.add(path, `expected a rule with class and a status and/or body, e.g. ${RULE_EXAMPLE}`);
      return;
    }
    const rule = readRule(new Section(item, path, s.issues));
    if (rule) rules.push(rule);
  });
  return rules;
}

function readRule(r: Section): ClassifyRuleConfig | undefined {
  if (!r.has("class")) r.issues.add(r.keyPath("class"), `required — one of ${FAILURE_CLASSES.join(", ")}`);
  const cls = r.has("class") ? r.oneOf("class", FAILURE_CLASSES, "client") : undefined;
  const status = r.has("status") ? r.statuses("status", []) : undefined;
  const body = r.string("body");
  if (body !== undefined) checkBodyPattern(r, body);
  if (!r.has("status") && body === undefined) {
    r.issues.add(r.path, "needs status or body (or both) — a rule with neither would match every failure");
  }
  r.done();
  if (cls === undefined) return undefined;
  return { ...(status && status.length > 0 ? { status } : {}), ...(body ? { body } : {}), class: cls };
}

/** Reports an empty body pattern, or a `/regex/` that does not compile. */
export function checkBodyPattern(r: Section, body: string): void {
  const path = r.keyPath("body");
  if (body === "") {
    r.issues.add(path, "is empty — write a substring of the error body, or /pattern/flags");
    return;
  }
  const literal = /^\/(.+)\/([a-z]*)$/s.exec(body);
  if (!literal) return;
  try {
    new RegExp(literal[1]!, literal[2]);
  } catch (error) {
    r.issues.add(
      path,
      `is not a valid regular expression (${(error as Error).message}) — fix it, or write a plain substring`,
    );
  }
}

/** `backoff:` — per-class ladders, each `{base_sec, factor | step_sec, max_sec}`; unset fields keep the defaults. */
export function readBackoff(s: Section): BackoffConfig | undefined {
  const b = s.section("backoff");
  if (!b) return undefined;
  const backoff: BackoffConfig = {};
  for (const cls of LADDER_CLASSES) {
    const l = b.section(cls);
    if (l) backoff[cls] = readLadder(l);
  }
  if (b.has("auth"))
    b.issues.add(
      b.keyPath("auth"),
      "auth has no ladder: an auth failure quarantines the key until a probe revives it (or upstream.quarantine_sec without a check)",
    );
  if (b.has("client"))
    b.issues.add(
      b.keyPath("client"),
      "client has no ladder: a client error (e.g. context too long) never rests the key",
    );
  b.done();
  return backoff;
}

function readLadder(l: Section): LadderConfig {
  const ladder: LadderConfig = {
    baseSec: l.seconds("base_sec", { positive: true }),
    factor: l.number("factor", { min: 1, max: MAX_BACKOFF_FACTOR }),
    stepSec: l.seconds("step_sec"),
    maxSec: l.seconds("max_sec", { positive: true }),
  };
  if (ladder.factor !== undefined && ladder.stepSec !== undefined) {
    l.issues.add(
      l.path,
      "has both factor and step_sec — a ladder grows by a factor (exponential) or by a step (linear); keep one",
    );
  }
  if (ladder.baseSec !== undefined && ladder.maxSec !== undefined && ladder.maxSec < ladder.baseSec) {
    l.issues.add(l.keyPath("max_sec"), `must be at least base_sec (${ladder.baseSec})`);
  }
  l.done();
  return Object.fromEntries(Object.entries(ladder).filter(([, v]) => v !== undefined)) as LadderConfig;
}
