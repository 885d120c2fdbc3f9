import { DomainError } from "../pool/errors";

export type ExhaustionListener = (pool: string, error: DomainError) => void;

/** Anything that hands out keys: the store itself, or the take queue in front of it. */
interface Taker {
  take(pool: string, options?: { exclude?: unknown }): Promise<unknown>;
}

/**
 * The same taker, except that a take that ends without a key is reported to `onExhausted` before
 * the error goes on to the caller. A take that excludes keys (a gateway retry) does not count: its
 * request already had a key, and the next request's first take will tell whether the pool is dry.
 * Every other member, including ones added later, passes straight through.
 */
export function reportExhaustion<T extends Taker>(taker: T, onExhausted: ExhaustionListener): T {
  const take = async (pool: string, options?: { exclude?: unknown }, ...rest: unknown[]) => {
    try {
      return await Reflect.apply(taker.take, taker, [pool, options, ...rest]);
    } catch (error) {
      if (error instanceof DomainError && error.code === "NO_KEY_AVAILABLE" && !excludesAny(options?.exclude))
        onExhausted(pool, error);
      throw error;
    }
  };
  const bound = new Map<PropertyKey, unknown>([["take", take]]);
  return new Proxy(taker, {
    get(target, property) {
      if (bound.has(property)) return bound.get(property);
      const value = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      const method = value.bind(target);
      bound.set(property, method);
      return method;
    },
  });
}

/** `exclude` is a list of key ids (the store) or lists by pool (the take queue). */
function excludesAny(exclude: unknown): boolean {
  if (Array.isArray(exclude)) return exclude.length > 0;
  if (typeof exclude === "object" && exclude !== null)
    return Object.values(exclude).some((ids) => Array.isArray(ids) && ids.length > 0);
  return false;
}
