import { MAX_REMAINING } from "../pool/bounds";

export interface RemainingQuota {
  /** What is counted: `requests`, `tokens`, `input_tokens`, `output_tokens`, … */
  kind: string;
  value: number;
}

// OpenAI-style (`x-ratelimit-remaining-requests`), Anthropic (`anthropic-ratelimit-tokens-remaining`)
// and the bare IETF draft / GitHub form (`ratelimit-remaining`, `x-ratelimit-remaining`).
const PATTERNS: RegExp[] = [
  /^x-ratelimit-remaining(?:-([a-z-]+))?$/,
  /^anthropic-ratelimit-([a-z-]+)-remaining$/,
  /^ratelimit-remaining$/,
];
const KIND = /^[a-z][a-z_]{0,31}$/;

/** The quotas an upstream says are left for the key that made the request, from its response headers. */
export function remainingQuotas(headers: Headers): RemainingQuota[] {
  const found: RemainingQuota[] = [];
  for (const [name, raw] of headers) {
    if (!name.includes("ratelimit")) continue;
    for (const pattern of PATTERNS) {
      const m = pattern.exec(name);
      if (!m) continue;
      const kind = (m[1] ?? "requests").replaceAll("-", "_");
      const value = Number.parseFloat(raw);
      // Label values come from the upstream: only short, plain kinds become series.
      if (KIND.test(kind) && Number.isFinite(value) && value >= 0) {
        found.push({ kind, value: Math.min(value, MAX_REMAINING) });
      }
      break;
    }
  }
  return found;
}
