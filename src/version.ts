import packageJson from "../package.json" with { type: "json" };

// Replaced by scripts/build.ts through `define`; absent when keypool runs from source.
declare const KEYPOOL_BUILD_VERSION: string | undefined;
declare const KEYPOOL_BUILD_COMMIT: string | undefined;

/** keypool's version: package.json's at build time, or as checked out when run from source. */
export const VERSION: string = typeof KEYPOOL_BUILD_VERSION === "string" ? KEYPOOL_BUILD_VERSION : packageJson.version;
/** The git commit the binary was built from (with `-dirty` for uncommitted changes); "dev" from source. */
export const COMMIT: string = typeof KEYPOOL_BUILD_COMMIT === "string" ? KEYPOOL_BUILD_COMMIT : "dev";
