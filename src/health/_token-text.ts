import { maskToken } from "../pool/mask";

const PLACEHOLDER = "{token}";

/**
 * Puts the token wherever the config says `{token}`. A replacer function, not a string,
 * because a replacement string would interpret `$&`, `` $` `` and `$'` inside the token.
 */
export function substituteToken(template: string, value: string): string {
  return template.replaceAll(PLACEHOLDER, () => value);
}

/** Replaces every spelling of the token we may have sent (raw, URL-encoded) with its masked form. */
export function scrubToken(text: string, token: string): string {
  if (!token) return text;
  let out = text;
  for (const form of new Set([token, encodeURIComponent(token)])) {
    out = out.replaceAll(form, () => maskToken(token));
  }
  return out;
}

/** The last non-empty line of some process or upstream output, short enough for a reason. */
export function lastLine(text: string, max = 120): string {
  const line = text.trim().split("\n").pop()?.trim() ?? "";
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}
