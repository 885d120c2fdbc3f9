import { MAX_SESSIONS } from "../pool/bounds";
import { type Issues, type Section, describe, joinPath } from "./_fields";
import { fallbackCycle } from "./fallback";
import { DEFAULT_SESSION, type PoolConfig, type SessionConfig } from "./types";

// RFC 9110 token characters: anything else cannot be a header name.
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

/** `session:` — sticky sessions; unset fields keep DEFAULT_SESSION's. */
export function readSession(s: Section): SessionConfig | undefined {
  const section = s.section("session");
  if (!section) return undefined;
  const header = section.string("header", DEFAULT_SESSION.header);
  if (!HEADER_NAME.test(header))
    section.issues.add(section.keyPath("header"), `${describe(header)} is not a header name — write e.g. x-session-id`);
  const session: SessionConfig = {
    enabled: section.bool("enabled", DEFAULT_SESSION.enabled),
    header: header.toLowerCase(),
    fingerprint: section.bool("fingerprint", DEFAULT_SESSION.fingerprint),
    ttlSec: section.seconds("ttl_sec", { default: DEFAULT_SESSION.ttlSec, positive: true }),
    max: section.number("max", {
      min: 1,
      max: MAX_SESSIONS,
      integer: true,
      unit: "sessions",
      default: DEFAULT_SESSION.max,
    }),
  };
  section.done();
  return session;
}

/** `fallback:` — a pool name or a list of them. Per pool only: a top-level default would make every pool its own fallback. */
export function readFallback(s: Section): string[] | undefined {
  if (!isOwn(s, "fallback")) return undefined;
  return s.stringList("fallback");
}

/** `model_map:` — request model → the model this pool's upstream calls it. Per pool only. */
export function readModelMap(s: Section): Record<string, string> | undefined {
  if (!isOwn(s, "model_map")) return undefined;
  const map = s.stringMap("model_map");
  for (const [from, to] of Object.entries(map)) {
    if (to.trim() === "")
      s.issues.add(
        joinPath(s.keyPath("model_map"), from),
        "is empty — write the model name this pool's upstream expects",
      );
  }
  return map;
}

/** True when `key` is set on this pool itself; a value inherited from the top level is reported. */
function isOwn(s: Section, key: string): boolean {
  const e = s.entry(key);
  if (!e) return false;
  if (e.path === s.keyPath(key)) return true;
  s.issues.add(
    e.path,
    `is set per pool, not as a default for every pool — move it under the pools that need it (pools.NAME.${key})`,
  );
  return false;
}

/**
 * Every fallback names another pool, and no pool falls back to itself, directly or through others.
 * `pathOf(pool)` is where the pool sits in the file (`pools.openai`, or "" for a single-pool file).
 */
export function checkFallbacks(
  pools: Record<string, PoolConfig>,
  pathOf: (pool: string) => string,
  issues: Issues,
): Record<string, PoolConfig> {
  const names = Object.keys(pools);
  const graph: Record<string, string[]> = {};
  for (const [name, pool] of Object.entries(pools)) {
    graph[name] = [];
    (pool.fallback ?? []).forEach((target, i) => {
      const path = joinPath(joinPath(pathOf(name), "fallback"), String(i));
      if (target in pools) graph[name]!.push(target);
      else
        issues.add(
          path,
          `${describe(target)} is not a pool (pools: ${names.join(", ")}) — name one of them, or remove it`,
        );
    });
  }
  const cycle = fallbackCycle(graph);
  if (cycle) {
    issues.add(
      joinPath(pathOf(cycle[0]!), "fallback"),
      `fallback cycle ${cycle.join(" → ")} — a pool cannot fall back to itself, even through other pools; remove one of these fallbacks`,
    );
  }
  return pools;
}
