/**
 * Fallback pools as a graph: each pool names the pools that serve its requests, in order, when it
 * has no usable key. Pure; the config loader rejects cycles, so every walk here ends.
 */

export type FallbackGraph = Readonly<Record<string, readonly string[] | undefined>>;

/**
 * The pools to try for a request to `pool`, in order: the pool itself, then each fallback followed
 * by that fallback's own fallbacks (depth first) — a fallback with no key hands on to its own
 * fallbacks before the next one in the original list. Each pool appears once.
 */
export function fallbackChain(graph: FallbackGraph, pool: string): string[] {
  const chain: string[] = [];
  const visit = (name: string) => {
    if (chain.includes(name)) return;
    chain.push(name);
    for (const next of graph[name] ?? []) if (next in graph) visit(next);
  };
  visit(pool);
  return chain;
}

/** The first cycle found, as a path that starts and ends with the same pool (`a → b → a`), or undefined. */
export function fallbackCycle(graph: FallbackGraph): string[] | undefined {
  const done = new Set<string>();
  const path: string[] = [];
  const visit = (name: string): string[] | undefined => {
    const at = path.indexOf(name);
    if (at !== -1) return [...path.slice(at), name];
    if (done.has(name) || !(name in graph)) return undefined;
    path.push(name);
    for (const next of graph[name] ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    done.add(name);
    return undefined;
  };
  for (const name of Object.keys(graph)) {
    const cycle = visit(name);
    if (cycle) return cycle;
  }
  return undefined;
}

/** Every pool's chain (itself, then its fallbacks), computed once per loaded config. */
export function fallbackChains(
  pools: Readonly<Record<string, { fallback?: readonly string[] }>>,
): Map<string, string[]> {
  const graph = Object.fromEntries(Object.entries(pools).map(([name, pool]) => [name, pool.fallback ?? []]));
  return new Map(Object.keys(pools).map((name) => [name, fallbackChain(graph, name)]));
}

/**
 * The name `model` goes by when a pool serves it: the pool's `model_map` entry (a fallback whose
 * provider calls the model differently), else the name as the caller gave it.
 */
export function modelServedAs(modelMap: Readonly<Record<string, string>> | undefined, model: string): string {
  return modelMap && Object.hasOwn(modelMap, model) ? modelMap[model]! : model;
}
