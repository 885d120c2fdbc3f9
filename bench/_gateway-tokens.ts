/** The pool every gateway benchmark subject serves from (the gateway, its stub-store twin, poolctl). */

/** Enough keys that rotation does real work, few enough that every one is hot in the store. */
export const POOL_KEYS = 20;

/**
 * Lines `id,token`. Tokens as long as real provider keys: the gateway searches every answer for the
 * key it sent, and that search is as cheap or as dear as the key is long (a short key cannot be
 * pre-filtered), so a toy key would price the search wrongly.
 */
export function benchTokenLines(): string[] {
  return Array.from({ length: POOL_KEYS }, (_, i) => {
    const id = `k${String(i).padStart(2, "0")}`;
    return `${id},sk-bench-${i}-${new Bun.CryptoHasher("sha256").update(id).digest("hex").slice(0, 40)}`;
  });
}
