/**
 * A benchmark target in its own process, so the load generator's CPU use weighs on both targets alike.
 *
 *   bun bench/_server.ts daemon|bare [state-dir]
 *
 * Prints its base URL as the first line of stdout, then serves until SIGINT/SIGTERM or until stdin
 * closes (the parent died without saying goodbye).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Config } from "../src/config/types";
import { createDaemon } from "../src/daemon/create-daemon";
import { silentLogger } from "../src/log";
import { benchKeys } from "./_keys";

const HTTP_KEYS = 100;

interface Target {
  url: string;
  stop(): Promise<void>;
}

async function startDaemon(stateDir: string): Promise<Target> {
  const config: Config = {
    server: { host: "127.0.0.1", port: 0 },
    stateFile: join(stateDir, "state.sqlite"),
    pools: {
      default: { name: "default", keys: benchKeys(HTTP_KEYS), rotation: "lru", cooldownSec: 0, recheckIntervalSec: 300, leaseTtlSec: 300 },
    },
  };
  const daemon = await createDaemon(config, { port: 0, logger: silentLogger });
  await daemon.start();
  return { url: daemon.url, stop: () => daemon.stop() };
}

// The same request and response shapes as the broker, and nothing else: the cost of HTTP + JSON in Bun.
function startBare(): Target {
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

async function main(): Promise<void> {
  const kind = process.argv[2];
  if (kind !== "daemon" && kind !== "bare") {
    console.error("usage: bun bench/_server.ts daemon|bare [state-dir]");
    process.exit(2);
  }
  const ownDir = kind === "daemon" && !process.argv[3];
  const stateDir = process.argv[3] ?? (ownDir ? mkdtempSync(join(tmpdir(), "keypool-bench-server-")) : "");
  const target = kind === "daemon" ? await startDaemon(stateDir) : startBare();

  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    try {
      await target.stop();
    } finally {
      if (ownDir) rmSync(stateDir, { recursive: true, force: true });
      process.exit(0);
    }
  };
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);

  process.stdout.write(`${target.url}\n`);
  // EOF on stdin means the parent is gone; don't outlive it.
  for await (const _ of Bun.stdin.stream()) {
  }
  await shutdown();
}

await main();
