import type { SpendCaps } from "../pool/budget";
import { DomainError } from "../pool/errors";
import type { KeyLimitOverrides, KeyOrigin, SpendCapChanges } from "./types";

/** `changes` applied over `current`: an absent field keeps its value, null clears it. */
export function mergeOverrides(
  current: Required<KeyLimitOverrides>,
  changes: KeyLimitOverrides,
): Required<KeyLimitOverrides> {
  const pick = (field: keyof KeyLimitOverrides) => (changes[field] === undefined ? current[field] : changes[field]);
  return {
    maxConcurrency: pick("maxConcurrency"),
    rpm: pick("rpm"),
    tpm: pick("tpm"),
    dailyRequests: pick("dailyRequests"),
  };
}

/** `changes` applied over a key's caps: an absent window keeps its cap, null removes it; undefined when none is left. */
export function mergeCaps(current: SpendCaps | undefined, changes: SpendCapChanges): SpendCaps | undefined {
  const dayMicros = changes.dayMicros === undefined ? current?.dayMicros : (changes.dayMicros ?? undefined);
  const monthMicros = changes.monthMicros === undefined ? current?.monthMicros : (changes.monthMicros ?? undefined);
  if (dayMicros === undefined && monthMicros === undefined) return undefined;
  return { ...(dayMicros !== undefined && { dayMicros }), ...(monthMicros !== undefined && { monthMicros }) };
}

/** Refuses to let the admin API change a key the config defines: the config would silently win at the next reload. */
export function ownedError(origin: KeyOrigin, pool: string, id: string): DomainError {
  if (origin === "env") {
    return new DomainError(
      "KEY_OWNED_BY_ENV",
      `key "${id}" in pool "${pool}" comes from the environment (KEYPOOL_POOL_*_KEYS); change the variable and restart instead`,
    );
  }
  return new DomainError(
    "KEY_OWNED_BY_FILE",
    `key "${id}" in pool "${pool}" is defined in the pool's tokens file; edit tokens.txt instead, then reload (POST /reload, SIGHUP or watch: true)`,
  );
}
