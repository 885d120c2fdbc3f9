import type { Issues } from "./_fields";
import type { Config } from "./types";

/**
 * A credential that keypool accepts must not also be one it hands out: with server.api_key equal to
 * a pooled token, every client given that key by /take could run the admin API; with a client key
 * equal to one, the gateway would let in whoever the upstream key had leaked to. Messages name the
 * pool and the key's id, never the value.
 */
export function checkCredentialReuse(config: Pick<Config, "server" | "pools">, issues: Issues): void {
  const pooled = new Map<string, string>();
  for (const pool of Object.values(config.pools)) {
    for (const key of pool.keys) pooled.set(key.token, `key "${key.id}" of pool "${pool.name}"`);
  }
  const apiKey = config.server.apiKey;
  const apiKeyOwner = apiKey === undefined ? undefined : pooled.get(apiKey);
  if (apiKeyOwner) {
    issues.add("server.api_key", `is the same value as ${apiKeyOwner} — give the API a key of its own`);
  }
  for (const pool of Object.values(config.pools)) {
    (pool.upstream?.clientKeys ?? []).forEach((clientKey, index) => {
      const owner = pooled.get(clientKey);
      const path = pool.name === "default" ? "upstream.client_keys" : `pools.${pool.name}.upstream.client_keys`;
      if (!owner) return;
      const fix = "clients need keys of their own, not upstream keys";
      issues.add(`${path}.${index}`, `is the same value as ${owner} — ${fix}`);
    });
  }
}
