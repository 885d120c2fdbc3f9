import { lastLine } from "./_token-text";

export type Encoding = "url" | "json" | "form" | "raw";

/**
 * Puts `{token}` and `{refresh_token}` into a template, encoded for where the template goes:
 * a value inside a JSON string or a form body must not be able to end it and add fields.
 */
export function substituteCredentials(
  template: string,
  credentials: { token: string; refreshToken: string | null },
  encoding: Encoding,
): string {
  const encode = (value: string) => {
    if (encoding === "url" || encoding === "form") return encodeURIComponent(value);
    if (encoding === "json") return JSON.stringify(value).slice(1, -1);
    return value;
  };
  // A replacer function, so `$&` and friends inside a token are not interpreted.
  return template.replaceAll(/\{(token|refresh_token)\}/g, (_, name: string) =>
    encode(name === "token" ? credentials.token : (credentials.refreshToken ?? "")),
  );
}

/** `a.b.c` into a parsed JSON body; undefined when any step is missing. */
export function fieldAt(body: unknown, path: string): unknown {
  let value = body;
  for (const part of path.split(".")) {
    if (typeof value !== "object" || value === null) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/**
 * The upstream's own words for a refused refresh: OAuth's `error` / `error_description`
 * (RFC 6749 §5.2), a `message`, or the last line of a non-JSON body.
 */
export function describeRefreshFailure(status: number, text: string): string {
  let detail = "";
  try {
    const body = JSON.parse(text) as unknown;
    const parts = ["error", "error_description", "message", "error.message"]
      .map((field) => fieldAt(body, field))
      .filter((v): v is string => typeof v === "string" && v !== "");
    detail = parts.join(": ");
  } catch {
    detail = lastLine(text);
  }
  return detail ? `HTTP ${status} (${lastLine(detail, 160)})` : `HTTP ${status}`;
}
