import { modelServedAs } from "../config/fallback";
import { DEFAULT_SESSION, type SessionConfig, type UpstreamConfig } from "../config/types";

/** A pool the gateway can forward to: its upstream, and the model names that upstream uses instead. */
export interface GatewayTarget {
  pool: string;
  upstream: UpstreamConfig;
  modelMap?: Readonly<Record<string, string>>;
}

/** One pool reachable through a gateway listener. */
export interface GatewayRoute extends GatewayTarget {
  /** `/openai`: requests under it go to this pool, with the prefix removed. */
  prefix: string;
  models: ReadonlySet<string>;
  session: SessionConfig;
  /** Pools that serve this route's requests, in order, when its own has no usable key. */
  fallbacks: GatewayTarget[];
}

export interface RouteExtras {
  session?: SessionConfig;
  modelMap?: Record<string, string>;
  fallbacks?: GatewayTarget[];
}

export interface RouteMatch {
  route: GatewayRoute;
  /** The path to send upstream (prefix removed when the prefix chose the route). */
  path: string;
}

export function buildRoute(pool: string, upstream: UpstreamConfig, extras: RouteExtras = {}): GatewayRoute {
  return {
    pool,
    upstream,
    prefix: upstream.pathPrefix ?? `/${pool}`,
    models: new Set(upstream.models),
    session: extras.session ?? DEFAULT_SESSION,
    modelMap: extras.modelMap,
    fallbacks: extras.fallbacks ?? [],
  };
}

/** The route's pool, or the fallback pool a lease came from. */
export function targetOf(route: GatewayRoute, pool: string): GatewayTarget {
  return pool === route.pool ? route : (route.fallbacks.find((f) => f.pool === pool) ?? route);
}

/**
 * Picks the pool for a request. A listener with one pool needs no routing (and strips nothing: a
 * pool named like a path segment must not eat it); with several, a path prefix wins, then the
 * JSON body's `model`.
 */
export function matchRoute(
  routes: readonly GatewayRoute[],
  path: string,
  model: string | undefined,
): RouteMatch | undefined {
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
export function modelOf(body: Uint8Array | undefined): string | undefined {
  return modelIn(jsonBodyOf(body));
}

export function modelIn(json: Record<string, unknown> | undefined): string | undefined {
  return typeof json?.model === "string" ? json.model : undefined;
}

/**
 * A JSON object body, parsed once per request (route, session, model map); undefined for anything else.
 * The content-type is not asked: curl's `-d` labels JSON as a form, and clients of this kind of proxy
 * send it so. Only a body that opens with `{` is parsed, so uploads and forms cost nothing.
 */
export function jsonBodyOf(body: Uint8Array | undefined): Record<string, unknown> | undefined {
  if (!body || body.length === 0 || firstNonSpace(body) !== OPEN_BRACE) return undefined;
  try {
    const parsed: unknown = JSON.parse(utf8.decode(body));
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

const utf8 = new TextDecoder();
const OPEN_BRACE = 0x7b;
const JSON_SPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);

function firstNonSpace(bytes: Uint8Array): number | undefined {
  for (const byte of bytes) if (!JSON_SPACE.has(byte)) return byte;
  return undefined;
}

/**
 * The body as `target` receives it: with the model renamed when the target's `model_map` names it
 * (a fallback pool whose upstream calls the model differently), else the client's bytes untouched.
 */
export function bodyFor(
  target: GatewayTarget,
  body: Uint8Array | undefined,
  json: Record<string, unknown> | undefined,
): { body: Uint8Array | undefined; model: string | undefined } {
  const model = modelIn(json);
  const mapped = model === undefined ? undefined : modelServedAs(target.modelMap, model);
  if (mapped === undefined || mapped === model || !json) return { body, model };
  return { body: new TextEncoder().encode(JSON.stringify({ ...json, model: mapped })), model: mapped };
}
