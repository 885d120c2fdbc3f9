import { DomainError } from "../pool/errors";

/** Request bodies nest no deeper than this; keypool's own bodies nest two levels. */
export const MAX_JSON_DEPTH = 32;

/**
 * Whether a parsed body nests arrays and objects deeper than `limit`. Iterative, and it stops at
 * the first value too deep: it runs before validation, which walks a deeply nested value
 * recursively — seconds of CPU and a stack overflow for a 200 KB body of `[[[[…`.
 */
export function nestsDeeperThan(value: unknown, limit = MAX_JSON_DEPTH): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [current, depth] = stack.pop()!;
    if (typeof current !== "object" || current === null) continue;
    if (depth + 1 > limit) return true;
    for (const child of Array.isArray(current) ? current : Object.values(current)) {
      if (typeof child === "object" && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}

/** Throws BAD_REQUEST for a parsed body that nests too deep; runs between parsing and validation. */
export function refuseDeepBody(body: unknown): void {
  if (typeof body === "object" && body !== null && nestsDeeperThan(body)) {
    throw new DomainError("BAD_REQUEST", `request body nests deeper than ${MAX_JSON_DEPTH} levels`);
  }
}
