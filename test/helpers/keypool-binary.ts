import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

/**
 * The compiled binary the end-to-end tests run: $KEYPOOL_BIN, or this platform's build in dist/
 * (`npm run build -- --target linux-x64` makes it). Tests skip, saying so, when it is missing:
 * a fresh clone's `npm test` passes without a build, and .ci/run builds first so CI runs them.
 */
export const KEYPOOL_BIN = resolve(
  process.env.KEYPOOL_BIN ??
    join(
      import.meta.dir,
      "../../dist",
      `keypool-${process.platform === "win32" ? "windows" : process.platform}-${process.arch}${process.platform === "win32" ? ".exe" : ""}`,
    ),
);

export const binaryBuilt = existsSync(KEYPOOL_BIN);

if (!binaryBuilt) {
  console.warn(
    `skipping end-to-end tests: no keypool binary at ${KEYPOOL_BIN} — run \`npm run build -- --target linux-x64\` (or set KEYPOOL_BIN)`,
  );
}
