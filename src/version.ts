/** Replaced at build time by scripts/build.ts; "dev" when run from source. */
export const VERSION: string = process.env.KEYPOOL_BUILD_VERSION ?? "0.1.0";
export const COMMIT: string = process.env.KEYPOOL_BUILD_COMMIT ?? "dev";
