import type { SQL } from "bun";
import { createHash, timingSafeEqual } from "node:crypto";
import { ConfigError } from "../../config/errors";
import { type TokenCipher, TokenDecryptError, isEncrypted, keyIdOf } from "../token-cipher";

/** Every column that holds a secret. A new secret column must be added here, or it is stored in plain text. */
const SECRET_COLUMNS = ["token", "source_token", "refresh_token", "source_refresh_token"] as const;

const CHECK_NAME = "token_key_check";
// Encrypted under the key and kept in keypool_meta: a wrong key fails to decrypt it at open, before any token is read.
const CHECK_PLAINTEXT = "keypool token key check v1";
const CACHE_LIMIT = 10_000;
const SET_KEY_HINT = "set KEYPOOL_MASTER_KEY or store.encryption_key_file to the key it was encrypted with";

/**
 * The PostgreSQL store's secret columns, sealed on write and revealed on read, with the same cipher
 * (src/store/token-cipher.ts) and the same rules as the SQLite store's vault: without a cipher
 * values are stored as given and an encrypted value is an error; with one, plain values written by a
 * keypool without the key still read as themselves and are sealed at open.
 */
export class PostgresVault {
  private readonly revealed = new Map<string, string>();

  constructor(
    private readonly cipher: TokenCipher | undefined,
    /** The database as messages name it (masked URL). */
    private readonly where: string,
  ) {}

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
    if (!this.cipher) throw new ConfigError([`the PostgreSQL store ${this.where} holds encrypted tokens — ${SET_KEY_HINT}`]);
    let plain: string;
    try {
      plain = this.cipher.decrypt(stored);
    } catch (error) {
      if (!(error instanceof TokenDecryptError)) throw error;
      throw new ConfigError([`${error.message} in ${this.where} — the store was re-encrypted under another key while this process ran; restart it with the new key`]);
    }
    this.remember(stored, plain);
    return plain;
  }

  /** Whether a stored value holds `token`, compared in constant time. */
  holds(stored: string, token: string): boolean {
    return timingSafeEqual(digest(this.reveal(stored)), digest(token));
  }

  /**
   * Checks at open that the key (or its absence) fits the database, and seals values a keypool
   * without a key stored. Runs inside the caller's transaction, under the migration lock.
   * @throws ConfigError when the key is wrong, or missing for an encrypted database.
   */
  async verify(tx: SQL): Promise<{ sealed: number }> {
    const [row] = await tx`SELECT value FROM keypool_meta WHERE name = ${CHECK_NAME}`;
    const check = (row as { value: string } | undefined)?.value;
    if (!this.cipher) {
      if (check !== undefined || (await this.any(tx, "encrypted"))) throw new ConfigError([`the PostgreSQL store ${this.where} holds encrypted tokens — ${SET_KEY_HINT}`]);
      return { sealed: 0 };
    }
    if (check !== undefined) this.checkKey(check);
    else if (await this.any(tx, "encrypted")) throw new ConfigError([`${this.cipher.source} is not the key the tokens in ${this.where} were encrypted with — ${SET_KEY_HINT}`]);
    const sealed = (await this.any(tx, "plain")) ? await this.sealAll(tx) : 0;
    if (check === undefined) {
      await tx`INSERT INTO keypool_meta (name, value) VALUES (${CHECK_NAME}, ${this.cipher.encrypt(CHECK_PLAINTEXT)})
               ON CONFLICT (name) DO UPDATE SET value = excluded.value`;
    }
    return { sealed };
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
        `${cipher.source} is not the key the PostgreSQL store ${this.where} was encrypted with (key id ${cipher.keyId}, the store's is ${storedId ?? "unreadable"}) — ${SET_KEY_HINT}`,
      ]);
    }
  }

  private async any(tx: SQL, kind: "plain" | "encrypted"): Promise<boolean> {
    const where = SECRET_COLUMNS.map((c) => (kind === "plain" ? `(${c} IS NOT NULL AND ${c} NOT LIKE 'enc:%')` : `${c} LIKE 'enc:%'`)).join(" OR ");
    return (await tx.unsafe(`SELECT 1 FROM keypool_keys WHERE ${where} LIMIT 1`)).length > 0;
  }

  private async sealAll(tx: SQL): Promise<number> {
    const rows = (await tx.unsafe(`SELECT pool, id, ${SECRET_COLUMNS.join(", ")} FROM keypool_keys FOR UPDATE`)) as Array<Record<string, string | null>>;
    let changed = 0;
    for (const row of rows) {
      // token and source_token usually hold the same value: one ciphertext for both keeps them comparable.
      const done = new Map<string, string>();
      const values = SECRET_COLUMNS.map((column) => {
        const value = row[column] ?? null;
        if (value === null || isEncrypted(value)) return value;
        let next = done.get(value);
        if (next === undefined) done.set(value, (next = this.seal(value)));
        changed++;
        return next;
      });
      await tx.unsafe(
        `UPDATE keypool_keys SET ${SECRET_COLUMNS.map((c, i) => `${c} = $${i + 1}`).join(", ")}
         WHERE pool = $${SECRET_COLUMNS.length + 1} AND id = $${SECRET_COLUMNS.length + 2}`,
        [...values, row.pool, row.id],
      );
    }
    return changed;
  }

  private remember(sealed: string, plain: string): void {
    if (this.revealed.size >= CACHE_LIMIT) this.revealed.clear();
    this.revealed.set(sealed, plain);
  }
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}
