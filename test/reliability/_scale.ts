/**
 * The default suite runs the long scenarios scaled down so `npm test` stays quick on a small box;
 * `KEYPOOL_RELIABILITY_FULL=1 bun test test/reliability` runs them at the sizes the issue names.
 */
export const FULL = process.env.KEYPOOL_RELIABILITY_FULL === "1";

/** `full` with KEYPOOL_RELIABILITY_FULL=1, else `quick`. */
export const scaled = <T>(quick: T, full: T): T => (FULL ? full : quick);
