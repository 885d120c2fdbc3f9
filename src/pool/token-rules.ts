/** What makes a token usable, and the id a key gets when its declaration names none. */

/**
 * Whether a token can be sent at all: it goes into an HTTP header (or a URL, or argv), which carry
 * visible ASCII only. A control character (NUL, DEL, …) or a non-ASCII letter would make every
 * request with the key fail, so such a key is refused when it is declared. Whitespace is checked
 * separately, with its own message.
 */
export function isSendableToken(token: string): boolean {
  return /^[\x21-\x7e]+$/.test(token);
}

/** What to tell the user about a token that is not sendable (never echoing it). */
export const UNSENDABLE_TOKEN =
  "has a control character or a non-ASCII character, which an HTTP header cannot carry — check the file's encoding";

/**
 * A stable id for a key declared without one: `t` and the 32-bit FNV-1a hash of the token's UTF-8 bytes
 * in 8 hex digits — poolctl's rule, so ids in its state, scripts and dashboards carry over.
 * Ids are shown everywhere, and 32 bits of hash say no more about a real key than the 40 bits of sha256
 * used before. 32 bits can collide, though: two tokens of one file that do are reported as a duplicate id,
 * and giving one of them an id settles it.
 */
export function deriveKeyId(token: string): string {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(token)) hash = Math.imul(hash ^ byte, 0x01000193);
  return `t${(hash >>> 0).toString(16).padStart(8, "0")}`;
}
