import type { SQL } from "bun";
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
 * The PostgreSQL side of the secret vault (src/store/secret-vault.ts): reading and writing the
 * check value and the secret columns, inside the caller's transaction.
 */

/**
 * Checks at open that the vault's key (or its absence) fits the database, and seals values a
 * keypool without a key stored. Runs under the migration lock, so instances opening at once agree.
 * @throws ConfigError when the key is wrong, or missing for an encrypted database.
 */
export async function verifyVault(tx: SQL, vault: SecretVault): Promise<{ sealed: number }> {
  const [row] = (await tx`SELECT value FROM keypool_meta WHERE name = ${KEY_CHECK_NAME}`) as Array<{ value: string }>;
  const needsCheck = vault.admit({ check: row?.value, anyEncrypted: await any(tx, ANY_ENCRYPTED_SECRET) });
  if (!vault.encrypted) return { sealed: 0 };
  const sealed = (await any(tx, ANY_PLAIN_SECRET)) ? await rewriteAll(tx, vault, vault.sealPlain) : 0;
  if (needsCheck) await writeCheck(tx, vault);
  return { sealed };
}

/**
 * Re-encrypts every secret under `next` and makes it the vault's key. Every key row is locked first,
 * so takes on other instances wait for the commit rather than read a half-rewritten pool.
 */
export async function rewrapVault(tx: SQL, vault: SecretVault, next: TokenCipher): Promise<{ rewritten: number }> {
  const rewritten = await rewriteAll(tx, vault, vault.rewrapUnder(next));
  await writeCheck(tx, vault, next);
  vault.switchTo(next);
  return { rewritten };
}

async function any(tx: SQL, where: string): Promise<boolean> {
  return (await tx.unsafe(`SELECT 1 FROM keypool_keys WHERE ${where} LIMIT 1`)).length > 0;
}

/** Applies `change` to every non-null secret; returns how many values it changed. */
async function rewriteAll(tx: SQL, vault: SecretVault, change: (value: string) => string): Promise<number> {
  const rows = (await tx.unsafe(
    `SELECT pool, id, ${SECRET_COLUMNS.join(", ")} FROM keypool_keys ORDER BY pool, id FOR UPDATE`,
  )) as Array<SecretColumns & { pool: string; id: string }>;
  const updates = rows.flatMap((row) => {
    const rewritten = vault.rewrite(row, change);
    return rewritten ? [{ row, ...rewritten }] : [];
  });
  // Every value is computed before the first write: one that cannot be decrypted stops the rewrite with nothing changed.
  for (const { row, values } of updates) {
    await tx.unsafe(
      `UPDATE keypool_keys SET ${SECRET_COLUMNS.map((c, i) => `${c} = $${i + 1}`).join(", ")}
       WHERE pool = $${SECRET_COLUMNS.length + 1} AND id = $${SECRET_COLUMNS.length + 2}`,
      [...values, row.pool, row.id],
    );
  }
  return updates.reduce((sum, u) => sum + u.changed, 0);
}

async function writeCheck(tx: SQL, vault: SecretVault, under?: TokenCipher): Promise<void> {
  await tx`INSERT INTO keypool_meta (name, value) VALUES (${KEY_CHECK_NAME}, ${vault.checkValue(under)})
           ON CONFLICT (name) DO UPDATE SET value = excluded.value`;
}
