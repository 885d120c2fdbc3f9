import { DomainError } from "../pool/errors";
import type { PoolStore } from "../store/types";

export type ExhaustionListener = (pool: string, error: DomainError) => void;

/**
 * The same store, except that a take that finds no key at all is reported to `onExhausted` before
 * the error goes on to the caller. A take that excludes keys (a gateway retry) does not count: its
 * request already had a key, and the next request's first take will tell whether the pool is dry.
 * Every other method, including ones added to the store later, passes straight through.
 */
export function reportExhaustion<S extends PoolStore>(store: S, onExhausted: ExhaustionListener): S {
  const take = async (...args: Parameters<PoolStore["take"]>) => {
    try {
      return await store.take(...args);
    } catch (error) {
      const [pool, options] = args;
      if (error instanceof DomainError && error.code === "NO_KEY_AVAILABLE" && !options?.exclude?.length) onExhausted(pool, error);
      throw error;
    }
  };
  const bound = new Map<PropertyKey, unknown>([["take", take]]);
  return new Proxy(store, {
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
