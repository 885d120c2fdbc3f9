/**
 * How long an upstream asked us to wait, in milliseconds: `retry-after-ms` (OpenAI) wins over
 * `Retry-After` (seconds or an HTTP date). Undefined when neither says anything usable.
 */
export function retryAfterMs(headers: { get(name: string): string | null }, now: number): number | undefined {
  const ms = headers.get("retry-after-ms")?.trim();
  if (ms && /^\d+(\.\d+)?$/.test(ms)) return Math.ceil(Number(ms));
  const seconds = parseRetryAfter(headers.get("retry-after"), now);
  return seconds === undefined ? undefined : seconds * 1000;
}

/** `Retry-After` as whole seconds: a delay, or an HTTP date turned into the delay until it. */
export function parseRetryAfter(value: string | null | undefined, now: number): number | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  if (/^\d+$/.test(text)) return Number(text);
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}
