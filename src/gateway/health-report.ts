import type { KeyStatus, PoolStore } from "../store/types";
import type { GatewayRoute } from "./route";

/**
 * `GET /health` on a gateway listener: per-key stats in the shape api-key-lb's users monitor
 * (`status`, `target`, `keys[]` with requests, errors, cache_hits, ready|throttled, `sessions`,
 * `uptime_ms`), plus keypool's own words beside them. Answered here, never forwarded: the upstream's
 * own /health says nothing about the keys. Tokens appear only masked.
 */
export interface GatewayHealth {
  status: "ok";
  /** The upstream base URL with any credentials or query replaced. */
  target: string;
  keys: HealthKey[];
  sessions: number;
  uptime_ms: number;
  pools: string[];
}

export interface HealthKey {
  id: string;
  pool: string;
  /** Masked token (`sk-…abcd`). */
  key: string;
  requests: number;
  errors: number;
  cache_hits: number;
  /** `ready` when the key can serve now; `throttled` for any other state (see `state` and `until`). */
  status: "ready" | "throttled";
  state: KeyStatus["state"];
  until: string | null;
  sessions: number;
}

/** States in which a key serves the next request. */
const READY_STATES = new Set<KeyStatus["state"]>(["live", "unknown"]);

export async function gatewayHealth(
  store: PoolStore,
  routes: readonly GatewayRoute[],
  cacheHits: CacheHitCounter,
): Promise<GatewayHealth> {
  const statuses = (await Promise.all(routes.map((r) => store.status(r.pool)))).flat();
  const keys = statuses.map(
    (k): HealthKey => ({
      id: k.id,
      pool: k.pool,
      key: k.masked,
      requests: k.requests,
      errors: k.errors,
      cache_hits: cacheHits.count(k.pool, k.id),
      status: READY_STATES.has(k.state) ? "ready" : "throttled",
      state: k.state,
      until: k.until === null ? null : new Date(k.until).toISOString(),
      sessions: k.sessions,
    }),
  );
  return {
    status: "ok",
    target: maskTarget(routes[0]?.upstream.baseUrl ?? ""),
    keys,
    sessions: keys.reduce((sum, k) => sum + k.sessions, 0),
    uptime_ms: Math.round(process.uptime() * 1000),
    pools: routes.map((r) => r.pool),
  };
}

/** `https://user:pass@host/v1?key=x` → `https://***@host/v1?…`: a base URL may carry a secret. */
export function maskTarget(baseUrl: string): string {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    return "";
  }
  const credentials = url.username || url.password ? "***@" : "";
  const query = url.search ? "?…" : "";
  return `${url.protocol}//${credentials}${url.host}${url.pathname === "/" ? "" : url.pathname}${query}`;
}

/**
 * Upstream answers that said they came from a cache (`x-cache: HIT`), per key, since the process
 * started: what api-key-lb counted as a key's cache hits. Token-level prompt-cache usage is in
 * /status and the metrics.
 */
export class CacheHitCounter {
  readonly #hits = new Map<string, number>();

  record(pool: string, id: string, headers: Headers): void {
    const value = (headers.get("x-cache") ?? headers.get("x-cached"))?.toLowerCase();
    if (value !== "hit") return;
    const name = `${pool}\0${id}`;
    this.#hits.set(name, (this.#hits.get(name) ?? 0) + 1);
  }

  count(pool: string, id: string): number {
    return this.#hits.get(`${pool}\0${id}`) ?? 0;
  }
}
