/**
 * One OS process of the library multi-process test: takes exclusive leases through the public
 * library (`openPool` + `withKey`) on a config shared with a running daemon. While it holds a key
 * it owns `<lockDir>/<key>` (created with O_EXCL), so a second holder anywhere fails to create it.
 *
 * Usage: bun library-hammer.ts CONFIG_PATH LOCK_DIR TAKES   → prints {"takes","violations","waits"}
 */
import { closeSync, openSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { DomainError, openPool } from "../../src/lib/index";

const [configPath, lockDir, takesArg] = process.argv.slice(2);
const target = Number(takesArg);
await using pool = await openPool({ config: configPath! });

let takes = 0;
let violations = 0;
let waits = 0;
while (takes < target) {
  try {
    await pool.withKey((_token, lease) => {
      takes++;
      const lockPath = join(lockDir!, lease.id);
      let fd: number;
      try {
        fd = openSync(lockPath, "wx");
      } catch {
        violations++;
        return;
      }
      closeSync(fd);
      unlinkSync(lockPath);
    });
  } catch (error) {
    if (!(error instanceof DomainError && error.code === "NO_KEY_AVAILABLE")) throw error;
    waits++;
  }
}
console.log(JSON.stringify({ takes, violations, waits }));
