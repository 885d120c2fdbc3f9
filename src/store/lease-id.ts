/** Bytes of randomness drawn from the system at a time: one call serves 256 leases. */
const RANDOM_BYTES = 4096;
const ID_BYTES = 16;
const PREFIX = "ls_";
const HEX_DIGITS = new TextEncoder().encode("0123456789abcdef");

const random = new Uint8Array(RANDOM_BYTES);
let drawn = RANDOM_BYTES;
const text = Buffer.from(PREFIX + "0".repeat(ID_BYTES * 2), "latin1");

/**
 * A new lease id: `ls_` and 32 hex digits, 128 bits from the system's secure random source. Whoever
 * holds a lease id may release the key it names, so it is never guessable. It is written straight into
 * one string: every take makes one, and a UUID stripped of its dashes and prefixed cost three.
 */
export function newLeaseId(): string {
  if (drawn === RANDOM_BYTES) {
    crypto.getRandomValues(random);
    drawn = 0;
  }
  for (let i = 0; i < ID_BYTES; i++) {
    const byte = random[drawn + i]!;
    text[PREFIX.length + 2 * i] = HEX_DIGITS[byte >> 4]!;
    text[PREFIX.length + 2 * i + 1] = HEX_DIGITS[byte & 15]!;
  }
  drawn += ID_BYTES;
  return text.toString("latin1");
}
