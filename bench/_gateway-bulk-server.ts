/**
 * The gateway benchmark's checkpoint section: the real daemon as `keypool proxy` runs it, over a pool of
 * many keys, so every request's take and release write pages all over a large table and the state file's
 * log fills fast enough that checkpoints run during the measurement.
 *
 *   bun bench/_gateway-bulk-server.ts <upstream-url> <state-dir> [keys]
 *
 * Speaks the contract in `_process.ts`: its URL on the first line of stdout, then serves until stopped.
 */
import { restartWithAllocatorSettings } from "../src/daemon/allocator";
import { startBenchGateway } from "./_gateway-daemon";
import { benchKeys } from "./_keys";
import { serveUntilStopped } from "./_process";

const DEFAULT_KEYS = 100_000;

// Run as `keypool proxy` runs (see src/daemon/allocator.ts).
restartWithAllocatorSettings(process.argv.slice(2));

const [upstreamUrl, stateDir, keysArg] = process.argv.slice(2);
const keyCount = Number(keysArg ?? DEFAULT_KEYS);
if (!upstreamUrl || !stateDir || !Number.isInteger(keyCount) || keyCount < 1) {
  console.error("usage: bun bench/_gateway-bulk-server.ts <upstream-url> <state-dir> [keys]");
  process.exit(2);
}
// The token lines are made inside the call, so nothing here holds them once the file is written: a
// module-level array of 100,000 of them would stay in the heap the benchmark measures the gateway's
// collections over, and no daemon keeps such a thing.
const gateway = await startBenchGateway({
  upstreamUrl,
  stateDir,
  tokens: benchKeys(keyCount).map((key) => `${key.id},${key.token}`),
  settings: ["rotation: lru"],
});
await serveUntilStopped({ url: gateway.gatewayUrl, stop: gateway.stop }, () => {});
