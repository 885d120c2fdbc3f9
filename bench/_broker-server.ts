/**
 * A benchmark target in its own process, so the load generator's CPU use weighs on both targets alike.
 *
 *   bun bench/_broker-server.ts daemon|bare|daemon-memory|api-stub [state-dir] [keys]
 *
 * `daemon` and `bare` are the two sides of the comparison. The other two take the daemon apart for
 * `--breakdown`: `daemon-memory` is the real daemon with its SQLite state in memory (no file I/O),
 * `api-stub` is the real HTTP app over a store that does nothing (the cost of Elysia alone). The daemons'
 * pool has `keys` keys (default DEFAULT_KEYS).
 *
 * Speaks the contract in `_process.ts`: its URL on the first line of stdout, then serves until stopped.
 */
import { join } from "node:path";
import type { Config } from "../src/config/types";
import { restartWithAllocatorSettings } from "../src/daemon/allocator";
import { createDaemon } from "../src/daemon/create-daemon";
import { createApiApp } from "../src/http/app";
import { BrokerService } from "../src/broker/broker-service";
import { silentLogger } from "../src/log";
import type { PoolStore } from "../src/store/types";
import { benchKeys } from "./_keys";
import { type ServedTarget, childStateDir, serveUntilStopped } from "./_process";

const DEFAULT_KEYS = 100;

const KINDS = ["daemon", "bare", "daemon-memory", "api-stub"] as const;
type Kind = (typeof KINDS)[number];

/**
 * The config is made apart from the async function that starts the daemon: an async function keeps
 * every local in a scope its closures (`stop`) keep alive, and the config's key list would then stay in
 * the heap every collection marks, as in no real daemon (which drops it once the store has the keys).
 */
async function startDaemon(stateFile: string, keyCount: number): Promise<ServedTarget> {
  const daemon = await createDaemon(daemonConfig(stateFile, keyCount), { port: 0, logger: silentLogger });
  await daemon.start();
  return { url: daemon.url, stop: () => daemon.stop() };
}

function daemonConfig(stateFile: string, keyCount: number): Config {
  return {
    server: { host: "127.0.0.1", port: 0 },
    stateFile,
    pools: {
      default: {
        name: "default",
        keys: benchKeys(keyCount),
        rotation: "lru",
        cooldownSec: 0,
        recheckIntervalSec: 300,
        leaseTtlSec: 300,
      },
    },
  };
}

// The same request and response shapes as the broker, and nothing else: the cost of HTTP + JSON in Bun.
function startBare(): ServedTarget {
  let leases = 0;
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    routes: {
      "/take": {
        GET: () =>
          Response.json({
            id: "k00042",
            token: "sk-bench-00042",
            pool: "default",
            lease: `ls_${(++leases).toString(16).padStart(32, "0")}`,
            expires_at: new Date(Date.now() + 300_000).toISOString(),
          }),
      },
      "/release": {
        POST: async (request) => {
          const body = (await request.json()) as { lease?: string; ok?: boolean };
          return Response.json({ pool: "default", id: "k00042", state: body.ok ? "live" : "cooling", reason: null });
        },
      },
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, stop: () => server.stop(true) };
}

// Only what BrokerService calls on the hot path; the answers mirror a real lease and release.
function stubStore(): PoolStore {
  let leases = 0;
  const stub = {
    poolNames: () => ["default"],
    take: async (pool: string) => {
      const now = Date.now();
      return {
        lease: `ls_${(++leases).toString(16).padStart(32, "0")}`,
        pool,
        id: "k00042",
        token: "sk-bench-00042",
        takenAt: now,
        expiresAt: now + 300_000,
      };
    },
    release: async () => ({ pool: "default", id: "k00042", state: "live", reason: null }),
  };
  return stub as unknown as PoolStore;
}

function startApiStub(): ServedTarget {
  const app = createApiApp({
    broker: new BrokerService(stubStore()),
    reload: async () => ({ pools: {} }),
    logger: silentLogger,
  });
  app.listen({ hostname: "127.0.0.1", port: 0 });
  return {
    url: `http://127.0.0.1:${app.server!.port}`,
    stop: async () => {
      await app.stop();
    },
  };
}

async function start(kind: Kind, stateDir: string, keyCount: number): Promise<ServedTarget> {
  switch (kind) {
    case "daemon":
      return startDaemon(join(stateDir, "state.sqlite"), keyCount);
    case "daemon-memory":
      return startDaemon(":memory:", keyCount);
    case "bare":
      return startBare();
    case "api-stub":
      return startApiStub();
  }
}

async function main(): Promise<void> {
  const kind = process.argv[2] as Kind;
  const keyCount = Number(process.argv[4] ?? DEFAULT_KEYS);
  if (!KINDS.includes(kind) || !Number.isInteger(keyCount) || keyCount < 1) {
    console.error(`usage: bun bench/_broker-server.ts ${KINDS.join("|")} [state-dir] [keys]`);
    process.exit(2);
  }
  // keypool's subjects run as `keypool serve` does; bare keeps Bun's defaults, as anyone's server would.
  if (kind !== "bare") restartWithAllocatorSettings(process.argv.slice(2));
  const stateDir = childStateDir(process.argv[3] || undefined, kind === "daemon", "keypool-bench-server-");
  await serveUntilStopped(await start(kind, stateDir.path, keyCount), stateDir.remove);
}

await main();
