import type { Database } from "bun:sqlite";
import { createHash, timingSafeEqual } from "node:crypto";
import { ConfigError } from "../../config/errors";
import { type TokenCipher, TokenDecryptError, isEncrypted, keyIdOf } from "../token-cipher";

/** Every column that holds a secret. A new secret column must be added here, or it is stored in plain text. */
const SECRET_COLUMNS = ["token", "source_token", "refresh_token", "source_refresh_token"] as const;

const CHECK_NAME = "token_key_check";
// Encrypted under the key and kept in `meta`: a wrong key fails to decrypt it at open, before any token is read.
const CHECK_PLAINTEXT = "keypool token key check v1";
const CACHE_LIMIT = 10_000;

const SET_KEY_HINT = "set KEYPOOL_MASTER_KEY or store.encryption_key_file to the key it was encrypted with";

/**
 * The SQLite store's secret columns, sealed on write and revealed on read. Without a cipher values
 * are stored as given, and an encrypted value is an error rather than a token. With one, a value
 * written by a keypool that had no key (plain text) still reads as itself, so nothing ever comes
 * back as ciphertext.
 */
export class TokenVault {
  // Decrypting costs a few µs; a take reveals the same few ciphertexts over and over.
  private readonly revealed = new Map<string, string>();

  constructor(
    private readonly db: Database,
    private cipher: TokenCipher | undefined,
    /** The state file, for messages. */
    private readonly where: string,
  ) {
    // Rows a token is rewritten out of are zeroed, so an old value does not linger in free pages.
    if (cipher) db.exec("PRAGMA secure_delete = ON");
  }

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
    if (!this.cipher) throw new ConfigError([`the state file ${this.where} holds encrypted tokens — ${SET_KEY_HINT}`]);
    const plain = this.decryptOrExplain(stored);
    this.remember(stored, plain);
    return plain;
  }

  /** Whether a stored value holds `token`, compared in constant time. */
  holds(stored: string, token: string): boolean {
    return timingSafeEqual(digest(this.reveal(stored)), digest(token));
  }

  /**
   * Checks at open that the key (or its absence) fits the file, and encrypts values a keypool
   * without a key stored. Runs in one IMMEDIATE transaction, so processes opening at once agree.
   * @throws ConfigError when the key is wrong, or missing for an encrypted file.
   */
  verify(): { sealed: number } {
    const run = this.db.transaction(() => {
      const check = (this.db.query("SELECT value FROM meta WHERE name = ?1").get(CHECK_NAME) as { value: string } | null)?.value;
      if (!this.cipher) {
        if (check !== undefined || this.anyEncrypted()) throw new ConfigError([`the state file ${this.where} holds encrypted tokens — ${SET_KEY_HINT}`]);
        return { sealed: 0 };
      }
      if (check !== undefined) this.checkKey(check);
      else if (this.anyEncrypted()) throw new ConfigError([`${this.cipher.source} is not the key the tokens in ${this.where} were encrypted with — ${SET_KEY_HINT}`]);
      // Only a file that a keypool without the key wrote to needs a pass over every row.
      const sealed = this.anyPlain() ? this.rewriteAll((value) => (isEncrypted(value) ? value : this.seal(value))) : 0;
      if (check === undefined) this.writeCheck();
      return { sealed };
    });
    return run.immediate() as { sealed: number };
  }

  /**
   * Re-encrypts every secret under `next` (a fresh IV for each even under the same key) and makes
   * `next` this vault's key. Every value is decrypted first, so a value the current key cannot read
   * stops it before anything is written.
   */
  rewrap(next: TokenCipher): { rewritten: number } {
    const run = this.db.transaction(() => {
      const rewritten = this.rewriteAll((value) => next.encrypt(this.reveal(value)));
      this.cipher = next;
      this.revealed.clear();
      this.db.exec("PRAGMA secure_delete = ON");
      this.writeCheck();
      return { rewritten };
    });
    return run.immediate() as { rewritten: number };
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
        `${cipher.source} is not the key the state file ${this.where} was encrypted with (key id ${cipher.keyId}, the file's is ${storedId ?? "unreadable"}) — ${SET_KEY_HINT}`,
      ]);
    }
  }

  private decryptOrExplain(stored: string): string {
    try {
      return this.cipher!.decrypt(stored);
    } catch (error) {
      if (!(error instanceof TokenDecryptError)) throw error;
      throw new ConfigError([`${error.message} in ${this.where} — the file was re-encrypted under another key while this process ran; restart it with the new key`]);
    }
  }

  private anyPlain(): boolean {
    const where = SECRET_COLUMNS.map((c) => `(${c} IS NOT NULL AND ${c} NOT LIKE 'enc:%')`).join(" OR ");
    return this.db.query(`SELECT 1 FROM keys WHERE ${where} LIMIT 1`).get() !== null;
  }

  private anyEncrypted(): boolean {
    const where = SECRET_COLUMNS.map((c) => `${c} LIKE 'enc:%'`).join(" OR ");
    return this.db.query(`SELECT 1 FROM keys WHERE ${where} LIMIT 1`).get() !== null;
  }

  /** Applies `change` to every non-null secret; returns how many values it changed. */
  private rewriteAll(change: (value: string) => string): number {
    const rows = this.db.query(`SELECT pool, id, ${SECRET_COLUMNS.join(", ")} FROM keys`).all() as Array<Record<string, string | null>>;
    const update = this.db.query(`UPDATE keys SET ${SECRET_COLUMNS.map((c, i) => `${c} = ?${i + 1}`).join(", ")}
                                  WHERE pool = ?${SECRET_COLUMNS.length + 1} AND id = ?${SECRET_COLUMNS.length + 2}`);
    let changed = 0;
    for (const row of rows) {
      const before = changed;
      // token and source_token usually hold the same value: one ciphertext for both keeps them comparable.
      const done = new Map<string, string>();
      const values = SECRET_COLUMNS.map((column) => {
        const value = row[column] ?? null;
        if (value === null) return null;
        let next = done.get(value);
        if (next === undefined) {
          next = change(value);
          done.set(value, next);
        }
        if (next !== value) changed++;
        return next;
      });
      if (changed > before) update.run(...values, row.pool!, row.id!);
    }
    return changed;
  }

  private writeCheck(): void {
    this.db.query("INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)").run(CHECK_NAME, this.cipher!.encrypt(CHECK_PLAINTEXT));
  }

  private remember(sealed: string, plain: string): void {
    if (this.revealed.size >= CACHE_LIMIT) this.revealed.clear();
    this.revealed.set(sealed, plain);
  }
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}
