import { maskToken } from "../pool/mask";

const PLACEHOLDER = "{token}";

/**
 * Puts the token wherever the config says `{token}`. A replacer function, not a string,
 * because a replacement string would interpret `$&`, `` $` `` and `$'` inside the token.
 */
export function substituteToken(template: string, value: string): string {
  return template.replaceAll(PLACEHOLDER, () => value);
}

/**
 * Masks the token in a text about to become a reason or a log line: every spelling we may have sent or a
 * program may print (raw, URL-encoded, JSON-escaped), and any piece of it long enough to matter — output cut
 * short, wrapped or partly echoed must not carry part of a secret out.
 */
export function scrubToken(text: string, token: string): string {
  if (!token) return text;
  const masked = maskToken(token);
  let out = text;
  for (const form of new Set([token, encodeURIComponent(token), JSON.stringify(token).slice(1, -1)])) {
    out = out.replaceAll(form, () => masked);
  }
  return maskPieces(out, token, masked);
}

/** Shorter runs that happen to match the token are common words and digits, not a leak. */
function pieceLength(token: string): number {
  return Math.max(4, Math.min(8, Math.floor(token.length / 2)));
}

function maskPieces(text: string, token: string, masked: string): string {
  const min = pieceLength(token);
  if (token.length < min) return text;
  let out = "";
  let i = 0;
  while (i < text.length) {
    let end = i + min;
    if (end > text.length || !token.includes(text.slice(i, end))) {
      out += text[i];
      i++;
      continue;
    }
    while (end < text.length && token.includes(text.slice(i, end + 1))) end++;
    out += masked;
    i = end;
  }
  return out;
}

/** The last non-empty line of some process or upstream output, short enough for a reason. */
export function lastLine(text: string, max = 120): string {
  const line = text.trim().split("\n").pop()?.trim() ?? "";
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}
