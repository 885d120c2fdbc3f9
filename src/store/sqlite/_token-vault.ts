import type { Database } from "bun:sqlite";
import type { TokenCipher } from "../token-cipher";
import {
  ANY_ENCRYPTED_SECRET,
  ANY_PLAIN_SECRET,
  KEY_CHECK_NAME,
  SECRET_COLUMNS,
  type SecretColumns,
  type SecretVault,
} from "../secret-vault";

/**
 * The SQLite side of the secret vault (src/store/secret-vault.ts): reading and writing the check
 * value and the secret columns. Each runs in one IMMEDIATE transaction, so processes opening one
 * file at once agree.
 */

/**
 * Checks at open that the vault's key (or its absence) fits the file, and seals values a keypool
 * without a key stored. Rows a token is rewritten out of are zeroed from then on (secure_delete),
 * so an old value does not linger in free pages.
 * @throws ConfigError when the key is wrong, or missing for an encrypted file.
 */
export function verifyVault(db: Database, vault: SecretVault): { sealed: number } {
  if (vault.encrypted) db.exec("PRAGMA secure_delete = ON");
  const run = db.transaction(() => {
    const check = (db.query("SELECT value FROM meta WHERE name = ?1").get(KEY_CHECK_NAME) as { value: string } | null)
      ?.value;
    const needsCheck = vault.admit({ check, anyEncrypted: any(db, ANY_ENCRYPTED_SECRET) });
    if (!vault.encrypted) return { sealed: 0 };
    // Only a file that a keypool without the key wrote to needs a pass over every row.
    const sealed = any(db, ANY_PLAIN_SECRET) ? rewriteAll(db, vault, vault.sealPlain) : 0;
    if (needsCheck) writeCheck(db, vault);
    return { sealed };
  });
  return run.immediate() as { sealed: number };
}

/** Re-encrypts every secret under `next` (a fresh IV for each, even under the same key) and makes `next` the vault's key. */
export function rewrapVault(db: Database, vault: SecretVault, next: TokenCipher): { rewritten: number } {
  const run = db.transaction(() => {
    const rewritten = rewriteAll(db, vault, vault.rewrapUnder(next));
    vault.switchTo(next);
    db.exec("PRAGMA secure_delete = ON");
    writeCheck(db, vault);
    return { rewritten };
  });
  return run.immediate() as { rewritten: number };
}

function any(db: Database, where: string): boolean {
  return db.query(`SELECT 1 FROM keys WHERE ${where} LIMIT 1`).get() !== null;
}

/** Applies `change` to every non-null secret; returns how many values it changed. */
function rewriteAll(db: Database, vault: SecretVault, change: (value: string) => string): number {
  const rows = db.query(`SELECT pool, id, ${SECRET_COLUMNS.join(", ")} FROM keys`).all() as Array<
    SecretColumns & { pool: string; id: string }
  >;
  const update = db.query(`UPDATE keys SET ${SECRET_COLUMNS.map((c, i) => `${c} = ?${i + 1}`).join(", ")}
                           WHERE pool = ?${SECRET_COLUMNS.length + 1} AND id = ?${SECRET_COLUMNS.length + 2}`);
  let changed = 0;
  for (const row of rows) {
    const rewritten = vault.rewrite(row, change);
    if (!rewritten) continue;
    update.run(...rewritten.values, row.pool, row.id);
    changed += rewritten.changed;
  }
  return changed;
}

function writeCheck(db: Database, vault: SecretVault): void {
  db.query("INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)").run(KEY_CHECK_NAME, vault.checkValue());
}
