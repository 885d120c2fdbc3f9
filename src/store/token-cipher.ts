import { createCipheriv, createDecipheriv, createHmac, randomBytes, scryptSync } from "node:crypto";

/**
 * Encryption of token values at rest: AES-256-GCM, one random 96-bit IV per value, stored as
 * `enc:v1:<key id>:<iv>:<ciphertext+tag>` (base64url). The key id names the key that wrote the value,
 * so a store can tell "written under another key" from "corrupted" and a key can be rotated.
 * Synchronous on purpose: the store reads and writes tokens inside SQLite transactions.
 */

const PREFIX = "enc:v1:";
const IV_BYTES = 12;
const TAG_BYTES = 16;
// A fixed salt: the derived key must be the same for every process and every state file sharing it.
// It still keeps precomputed passphrase tables made for other programs useless.
const PASSPHRASE_SALT = "keypool/master-key/v1";
const SCRYPT = { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

/** The key could not decrypt a stored value: it was written under another key, or altered. */
export class TokenDecryptError extends Error {
  constructor(
    message: string,
    /** The key id the value names, when it could be read. */
    readonly keyId?: string,
  ) {
    super(message);
    this.name = "TokenDecryptError";
  }
}

export interface TokenCipher {
  /** A short, non-secret name of the key (HMAC of a fixed label under it), written into every value. */
  readonly keyId: string;
  /** Where the key came from, for messages: "KEYPOOL_MASTER_KEY" or "store.encryption_key_file (/path)". */
  readonly source: string;
  encrypt(plain: string): string;
  /** @throws TokenDecryptError when the value was written under another key or does not authenticate. */
  decrypt(stored: string): string;
}

/** Whether a stored value is one of ours (`enc:v1:…`) rather than a plain token. */
export function isEncrypted(stored: string): boolean {
  return stored.startsWith(PREFIX);
}

/** The key id an encrypted value names, or undefined for a plain or malformed value. */
export function keyIdOf(stored: string): string | undefined {
  if (!isEncrypted(stored)) return undefined;
  return stored.slice(PREFIX.length).split(":")[0] || undefined;
}

/**
 * Reads master key material: 64 hex digits or base64/base64url of exactly 32 bytes is used as the
 * key itself; anything else is a passphrase, stretched with scrypt. Surrounding whitespace (a
 * trailing newline in a key file) is ignored.
 * @throws Error when the text is empty or a passphrase is shorter than 12 characters.
 */
export function parseMasterKey(text: string): Uint8Array {
  const value = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(value)) return new Uint8Array(Buffer.from(value, "hex"));
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(value)) {
    const bytes = Buffer.from(value.replaceAll("-", "+").replaceAll("_", "/"), "base64");
    if (bytes.length === 32) return new Uint8Array(bytes);
  }
  if (value.length === 0) throw new Error("the master key is empty");
  if (value.length < 12) {
    throw new Error(
      "the master key is too short: give 32 random bytes as 64 hex digits or base64 (openssl rand -hex 32), or a passphrase of 12 or more characters",
    );
  }
  return derivePassphraseKey(value);
}

const derived = new Map<string, Uint8Array>();

function derivePassphraseKey(passphrase: string): Uint8Array {
  // scrypt costs ~100 ms by design; a process that opens several stores pays it once.
  let key = derived.get(passphrase);
  if (!key) {
    key = new Uint8Array(scryptSync(passphrase.normalize("NFC"), PASSPHRASE_SALT, 32, SCRYPT));
    derived.set(passphrase, key);
  }
  return key;
}

/** A cipher over one 32-byte key. `source` only labels messages. */
export function createTokenCipher(key: Uint8Array, source: string): TokenCipher {
  if (key.length !== 32) throw new Error(`an AES-256 key is 32 bytes, got ${key.length}`);
  const keyId = createHmac("sha256", key).update("keypool key id").digest("base64url").slice(0, 11);
  return {
    keyId,
    source,
    encrypt(plain) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv("aes-256-gcm", key, iv);
      const body = Buffer.concat([cipher.update(plain, "utf8"), cipher.final(), cipher.getAuthTag()]);
      return `${PREFIX}${keyId}:${iv.toString("base64url")}:${body.toString("base64url")}`;
    },
    decrypt(stored) {
      const parts = isEncrypted(stored) ? stored.slice(PREFIX.length).split(":") : [];
      if (parts.length !== 3) throw new TokenDecryptError("a stored token is not in the enc:v1 format");
      const [id, ivText, bodyText] = parts as [string, string, string];
      if (id !== keyId) throw new TokenDecryptError(`a stored token was encrypted under key ${id}, not ${keyId}`, id);
      const iv = Buffer.from(ivText, "base64url");
      const body = Buffer.from(bodyText, "base64url");
      if (iv.length !== IV_BYTES || body.length < TAG_BYTES)
        throw new TokenDecryptError("a stored token is truncated", id);
      try {
        const decipher = createDecipheriv("aes-256-gcm", key, iv);
        decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
        return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]).toString(
          "utf8",
        );
      } catch {
        throw new TokenDecryptError(
          "a stored token does not authenticate under this key (altered, or a key with a clashing id)",
          id,
        );
      }
    },
  };
}
