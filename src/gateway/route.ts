import type { UpstreamConfig } from "../config/types";

/** One pool reachable through a gateway listener. */
export interface GatewayRoute {
  pool: string;
  upstream: UpstreamConfig;
  /** `/openai`: requests under it go to this pool, with the prefix removed. */
  prefix: string;
  models: ReadonlySet<string>;
}

export interface RouteMatch {
  route: GatewayRoute;
  /** The path to send upstream (prefix removed when the prefix chose the route). */
  path: string;
}

export function buildRoute(pool: string, upstream: UpstreamConfig): GatewayRoute {
  return { pool, upstream, prefix: upstream.pathPrefix ?? `/${pool}`, models: new Set(upstream.models) };
}

/**
 * Picks the pool for a request. A listener with one pool needs no routing (and strips nothing: a
 * pool named like a path segment must not eat it); with several, a path prefix wins, then the
 * JSON body's `model`.
 */
export function matchRoute(routes: readonly GatewayRoute[], path: string, model: string | undefined): RouteMatch | undefined {
  if (routes.length === 1) {
    return { route: routes[0]!, path };
  }
  for (const route of routes) {
    const rest = underPrefix(path, route.prefix);
    if (rest !== undefined) return { route, path: rest };
  }
  if (model !== undefined) {
    const route = routes.find((r) => r.models.has(model));
    if (route) return { route, path };
  }
  return undefined;
}

/** `/openai/v1/x` under `/openai` → `/v1/x`; `/openai` → `/`; `/openaiX` → undefined. */
function underPrefix(path: string, prefix: string): string | undefined {
  if (!prefix || prefix === "/") return undefined;
  if (path === prefix) return "/";
  return path.startsWith(`${prefix}/`) ? path.slice(prefix.length) : undefined;
}

/** Reads `model` from a JSON body without failing on anything that is not JSON. */
export function modelOf(body: Uint8Array | undefined, contentType: string | null): string | undefined {
  if (!body || body.length === 0 || !contentType?.includes("json")) return undefined;
  try {
    const parsed = JSON.parse(new TextDecoder().decode(body)) as { model?: unknown };
    return typeof parsed?.model === "string" ? parsed.model : undefined;
  } catch {
    return undefined;
  }
}
