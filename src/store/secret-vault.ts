import { createHash, timingSafeEqual } from "node:crypto";
import { ConfigError } from "../config/errors";
import { type TokenCipher, TokenDecryptError, isEncrypted, keyIdOf } from "./token-cipher";

/** Every column that holds a secret, in both stores. A new secret column must be added here, or it is stored in plain text. */
export const SECRET_COLUMNS = ["token", "source_token", "refresh_token", "source_refresh_token"] as const;

export type SecretColumns = Record<(typeof SECRET_COLUMNS)[number], string | null>;

/** The meta row that holds the check value. */
export const KEY_CHECK_NAME = "token_key_check";
// Encrypted under the key and kept with the state: a wrong key fails to decrypt it at open, before any token is read.
const CHECK_PLAINTEXT = "keypool token key check v1";
const CACHE_LIMIT = 10_000;
const SET_KEY_HINT = "set KEYPOOL_MASTER_KEY or store.encryption_key_file to the key it was encrypted with";

/** SQL conditions (the same in SQLite and PostgreSQL) for a row holding at least one value of the kind. */
export const ANY_PLAIN_SECRET = SECRET_COLUMNS.map((c) => `(${c} IS NOT NULL AND ${c} NOT LIKE 'enc:%')`).join(" OR ");
export const ANY_ENCRYPTED_SECRET = SECRET_COLUMNS.map((c) => `${c} LIKE 'enc:%'`).join(" OR ");

/** What a store found at open, for `admit`. */
export interface StoredKeyState {
  /** The stored check value, if a keypool with a key ever opened the store. */
  check: string | undefined;
  anyEncrypted: boolean;
}

/**
 * Sealing and revealing a store's secret columns, and the rules both stores share: without a
 * cipher values are stored as given and an encrypted value is an error rather than a token; with
 * one, a value written by a keypool that had no key (plain text) still reads as itself, so nothing
 * ever comes back as ciphertext. The stores do the reading and writing; this decides.
 */
export class SecretVault {
  // Decrypting costs a few µs; a take reveals the same few ciphertexts over and over.
  private readonly revealed = new Map<string, string>();

  constructor(
    private cipher: TokenCipher | undefined,
    /** The store as messages name it: "the state file /path", "the PostgreSQL store postgres://host/db". */
    private readonly where: string,
  ) {}

  get encrypted(): boolean {
    return this.cipher !== undefined;
  }

  seal(plain: string): string;
  seal(plain: string | null): string | null;
  seal(plain: string | null): string | null {
    if (plain === null || !this.cipher) return plain;
    const sealed = this.cipher.encrypt(plain);
    this.remember(sealed, plain);
    return sealed;
  }

  reveal(stored: string): string;
  reveal(stored: string | null): string | null;
  reveal(stored: string | null): string | null {
    if (stored === null || !isEncrypted(stored)) return stored;
    const known = this.revealed.get(stored);
    if (known !== undefined) return known;
    if (!this.cipher) throw this.missingKey();
    let plain: string;
    try {
      plain = this.cipher.decrypt(stored);
    } catch (error) {
      if (!(error instanceof TokenDecryptError)) throw error;
      throw new ConfigError([
        `${error.message} in ${this.where} — the store was re-encrypted under another key while this process ran; restart it with the new key`,
      ]);
    }
    this.remember(stored, plain);
    return plain;
  }

  /** Whether a stored value holds `token`, compared in constant time. */
  holds(stored: string, token: string): boolean {
    return timingSafeEqual(digest(this.reveal(stored)), digest(token));
  }

  /**
   * Decides at open whether this process's key (or its absence) fits what the store holds.
   * Returns true when the store has no check value yet and the caller must write `checkValue()`.
   * @throws ConfigError when the key is wrong, or missing for an encrypted store.
   */
  admit(found: StoredKeyState): boolean {
    if (!this.cipher) {
      if (found.check !== undefined || found.anyEncrypted) throw this.missingKey();
      return false;
    }
    if (found.check !== undefined) this.checkKey(found.check);
    else if (found.anyEncrypted)
      throw new ConfigError([
        `${this.cipher.source} is not the key the tokens in ${this.where} were encrypted with — ${SET_KEY_HINT}`,
      ]);
    return found.check === undefined;
  }

  /** The check value to store under the current key, or under `next` before a rewrap is committed (a fresh one each call). */
  checkValue(next: TokenCipher = this.cipher!): string {
    return next.encrypt(CHECK_PLAINTEXT);
  }

  /** The change `rewrite` applies at open: plain values sealed, encrypted ones kept. */
  readonly sealPlain = (value: string): string => (isEncrypted(value) ? value : this.seal(value));

  /**
   * The change that re-encrypts under `next`; every value is decrypted with the current key first,
   * so a value it cannot read stops the rewrite before the caller writes anything. Call `switchTo`
   * once the rewrite is stored.
   */
  rewrapUnder(next: TokenCipher): (value: string) => string {
    return (value) => next.encrypt(this.reveal(value));
  }

  /** Makes `next` the vault's key (after a rewrap). */
  switchTo(next: TokenCipher): void {
    this.cipher = next;
    this.revealed.clear();
  }

  /**
   * A row's secrets after `change`, in SECRET_COLUMNS order, or undefined when none changed.
   * Equal values (token and source_token usually are) get one new value, so they stay comparable.
   */
  rewrite(
    row: SecretColumns,
    change: (value: string) => string,
  ): { values: Array<string | null>; changed: number } | undefined {
    const done = new Map<string, string>();
    let changed = 0;
    const values = SECRET_COLUMNS.map((column) => {
      const value = row[column];
      if (value === null) return null;
      let next = done.get(value);
      if (next === undefined) done.set(value, (next = change(value)));
      if (next !== value) changed++;
      return next;
    });
    return changed > 0 ? { values, changed } : undefined;
  }

  private checkKey(check: string): void {
    const cipher = this.cipher!;
    const storedId = keyIdOf(check);
    let ok = false;
    try {
      ok = storedId === cipher.keyId && cipher.decrypt(check) === CHECK_PLAINTEXT;
    } catch (error) {
      if (!(error instanceof TokenDecryptError)) throw error;
    }
    if (!ok) {
      throw new ConfigError([
        `${cipher.source} is not the key ${this.where} was encrypted with (key id ${cipher.keyId}, the store's is ${storedId ?? "unreadable"}) — ${SET_KEY_HINT}`,
      ]);
    }
  }

  private missingKey(): ConfigError {
    return new ConfigError([`${this.where} holds encrypted tokens — ${SET_KEY_HINT}`]);
  }

  private remember(sealed: string, plain: string): void {
    if (this.revealed.size >= CACHE_LIMIT) this.revealed.clear();
    this.revealed.set(sealed, plain);
  }
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}
