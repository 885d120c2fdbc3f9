const REDACTED = "[redacted]";

// Order matters: specific shapes first, so the generic long-run rule does not eat their labels.
const RULES: Array<[RegExp, string | ((match: string, ...groups: string[]) => string)]> = [
  // Authorization schemes, wherever an upstream echoes the header.
  [/\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]{6,}/gi, (_, scheme) => `${scheme} ${REDACTED}`],
  // Credential-named query, form and header-like parameters: `?key=…`, `api_key=…`, `x-api-key: …`.
  [
    /\b((?:api[_-]?key|x-api-key|key|token|access_token|refresh_token|id_token|client_secret|secret|password|passwd|sig|signature|auth)\s*[=:]\s*)(?!\[redacted\])[^\s&"',;}]+/gi,
    (_, name) => `${name}${REDACTED}`,
  ],
  // The same names as JSON fields with a string value.
  [
    /("(?:api[_-]?key|key|token|access_token|refresh_token|id_token|client_secret|secret|password|authorization)"\s*:\s*)"[^"]*"/gi,
    (_, field) => `${field}"${REDACTED}"`,
  ],
  // JSON Web Tokens.
  [/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, REDACTED],
  // Vendor key shapes: OpenAI/Anthropic `sk-…`, Slack `xox?-…`, GitHub `ghp_…`, Google `AIza…`, AWS `AKIA…`.
  [/\b(?:sk|pk|rk)-[A-Za-z0-9_-]{8,}/g, REDACTED],
  [
    /\b(?:xox[abpors]-[A-Za-z0-9-]{8,}|gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{16,}|AIza[A-Za-z0-9_-]{20,}|AKIA[A-Z0-9]{12,})/g,
    REDACTED,
  ],
  // Long hex or base64 runs with both letters and digits: a real word or path segment has no digits.
  [/[A-Za-z0-9+/_-]{32,}={0,2}/g, (run) => (/\d/.test(run) && /[A-Za-z]/.test(run) ? REDACTED : run)],
];

/**
 * Takes out of a text (typically an upstream's error body, about to be logged) anything that
 * looks like a credential, and every `known` secret verbatim. Pure; the result is for humans,
 * not for parsing.
 */
export function scrubSecrets(text: string, known: readonly string[] = []): string {
  let out = text;
  for (const secret of known) if (secret.length >= 4) out = out.replaceAll(secret, REDACTED);
  for (const [pattern, replacement] of RULES) out = out.replace(pattern, replacement as (match: string) => string);
  return out;
}
