import { MAX_COOLDOWN_SEC, clampCooldownMs } from "./bounds";

/**
 * How long an upstream asked us to wait, in milliseconds: `retry-after-ms` (OpenAI) wins over
 * `Retry-After` (seconds or an HTTP date). Undefined when neither says anything usable; never more
 * than MAX_COOLDOWN_MS, however far off the upstream says.
 */
export function retryAfterMs(headers: { get(name: string): string | null }, now: number): number | undefined {
  const ms = headers.get("retry-after-ms")?.trim();
  if (ms && /^\d+(\.\d+)?$/.test(ms)) return clampCooldownMs(Number(ms));
  const seconds = parseRetryAfter(headers.get("retry-after"), now);
  return seconds === undefined ? undefined : clampCooldownMs(seconds * 1000);
}

/**
 * `Retry-After` as whole seconds: a delay, or an HTTP date turned into the delay until it. Held to
 * [0, MAX_COOLDOWN_SEC]: a date in the past means now, one years ahead (or a delay of billions of
 * seconds) means the longest rest keypool gives.
 */
export function parseRetryAfter(value: string | null | undefined, now: number): number | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  if (/^\d+$/.test(text)) return Math.min(Number(text), MAX_COOLDOWN_SEC);
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.min(MAX_COOLDOWN_SEC, Math.max(0, Math.ceil((at - now) / 1000)));
}
