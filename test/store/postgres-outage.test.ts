import { describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { jsonPost } from "../helpers/daemon";
import { announceSkip, freshSchema, POSTGRES_URL, postgresBinDir, startOwnCluster } from "../helpers/postgres";
import { spawnDaemon } from "../helpers/spawn-daemon";
import { startTcpRelay, type TcpRelay } from "../helpers/tcp-relay";
import { tempDir } from "../helpers/temp-dir";

const BIN_DIR = postgresBinDir();
if (!BIN_DIR) console.warn("[skip] test/store/postgres-outage.test.ts: no PostgreSQL server binaries (apt-get install postgresql, or source scripts/ci-postgres.sh)");
announceSkip("test/store/postgres-outage.test.ts (a server that stops answering)");

const TIMEOUT_SEC = 2;
// What a take may take past store.timeout_sec: the HTTP round trip and the daemon's own work.
const DEADLINE_MS = TIMEOUT_SEC * 1000 + 500;

interface TakeResult {
  status: number;
  body: { lease?: string; error?: { code: string } };
  ms: number;
}

async function take(daemonUrl: string): Promise<TakeResult> {
  const started = performance.now();
  const response = await fetch(`${daemonUrl}/take`);
  return { status: response.status, body: (await response.json()) as TakeResult["body"], ms: performance.now() - started };
}

/** Writes a two-key config for `url` and runs `keypool serve` on it. */
async function serveWith(dir: ReturnType<typeof tempDir>, postgres: string) {
  writeFileSync(dir.file("tokens.txt"), "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\nb,sk-test-bbbbbbbbbbbbbbbbbbbbbbbb\n");
  writeFileSync(dir.file("keypool.yaml"), `tokens_file: tokens.txt\ncooldown_sec: 0\nserver:\n  addr: 127.0.0.1:0\nstore:\n  postgres:\n${postgres}`);
  return spawnDaemon(["serve", "-c", dir.file("keypool.yaml")], { NO_COLOR: "1" });
}

/** Takes until one succeeds, at most `attempts` times; every answer on the way must be a clean 503. */
async function takeUntilServed(daemonUrl: string, attempts = 10): Promise<TakeResult[]> {
  const results: TakeResult[] = [];
  for (let i = 0; i < attempts && results.at(-1)?.status !== 200; i++) results.push(await take(daemonUrl));
  return results;
}

describe.skipIf(!BIN_DIR)("when PostgreSQL goes away", () => {
  it("answers takes with 503 STORE_UNAVAILABLE within store.timeout_sec, stays up, and recovers by itself", async () => {
    // A cluster of this test's own, on its own port: stopping it disturbs no other test.
    await using cluster = await startOwnCluster(BIN_DIR!);
    using dir = tempDir();
    await using daemon = await serveWith(dir, `    url: ${cluster.url}\n    timeout_sec: ${TIMEOUT_SEC}\n`);

    const before = await take(daemon.url);
    expect(before.status).toBe(200);
    await fetch(`${daemon.url}/release`, jsonPost({ lease: before.body.lease, ok: true }));

    await cluster.stop();
    for (let i = 0; i < 3; i++) {
      const during = await take(daemon.url);
      expect([during.status, during.body.error?.code]).toEqual([503, "STORE_UNAVAILABLE"]);
      expect(during.ms).toBeLessThan(DEADLINE_MS);
    }
    expect((await fetch(`${daemon.url}/health`)).status).toBe(200);

    await cluster.start();
    // The first takes may still land on connections the restart cut; the pool replaces them by itself.
    const after = (await takeUntilServed(daemon.url)).map((r) => r.status);
    expect(after.at(-1)).toBe(200);
    expect(after.filter((s) => s !== 200 && s !== 503)).toEqual([]);
    expect(daemon.proc.exitCode).toBeNull();
  }, 30_000);
});

describe.skipIf(!POSTGRES_URL)("when PostgreSQL stops answering but keeps its connections open", () => {
  // Two ways a hang ends: the host wakes and answers what it was sent, or the connections die
  // (a reboot, a NAT that forgot them) and the client has to notice and connect again.
  it.each([
    ["answers again", (relay: TcpRelay) => relay.thaw()],
    [
      "cuts every connection",
      (relay: TcpRelay) => {
        relay.cut();
        relay.thaw();
      },
    ],
    [
      "strands them",
      (relay: TcpRelay) => {
        relay.strand();
        relay.thaw();
      },
    ],
  ])("answers 503 STORE_UNAVAILABLE within store.timeout_sec, stays up, and recovers when the server %s", async (_, end) => {
    // The shared cluster behind a relay of this test's own: freezing it disturbs no other test.
    await using schema = await freshSchema();
    const target = new URL(POSTGRES_URL!);
    await using relay = await startTcpRelay(target.hostname, Number(target.port));
    const url = new URL(schema.url);
    url.port = String(relay.port);
    using dir = tempDir();
    // Fewer connections than concurrent takes: hung connections must not leave later takes waiting past the deadline.
    await using daemon = await serveWith(dir, `    url: ${url}\n    timeout_sec: ${TIMEOUT_SEC}\n    max_connections: 2\n`);

    const before = await take(daemon.url);
    expect(before.status).toBe(200);
    expect((await fetch(`${daemon.url}/release`, jsonPost({ lease: before.body.lease, ok: true }))).status).toBe(200);

    relay.freeze();
    const sequential = [await take(daemon.url), await take(daemon.url)];
    const concurrent = await Promise.all(Array.from({ length: 5 }, () => take(daemon.url)));
    for (const during of [...sequential, ...concurrent]) {
      expect([during.status, during.body.error?.code]).toEqual([503, "STORE_UNAVAILABLE"]);
      expect(during.ms).toBeLessThan(DEADLINE_MS);
    }
    expect((await fetch(`${daemon.url}/health`)).status).toBe(200);

    end(relay);
    const after = await takeUntilServed(daemon.url);
    console.log("DEBUG", JSON.stringify({ sequential: sequential.map((r) => [r.status, Math.round(r.ms)]), concurrent: concurrent.map((r) => [r.status, Math.round(r.ms)]), after: after.map((r) => [r.status, Math.round(r.ms)]) }));
    const { SQL } = await import("bun");
    const db = new SQL(schema.url, { max: 1 });
    console.log("DEBUG leases", JSON.stringify(await db`SELECT key_id, count(*)::int AS n FROM keypool_leases GROUP BY key_id`), JSON.stringify(await db`SELECT id, in_flight FROM keypool_keys`));
    await db.close();
    expect(after.at(-1)?.status).toBe(200);
    expect(after.filter((r) => r.status !== 200 && r.status !== 503)).toEqual([]);
    expect(after.filter((r) => r.ms >= DEADLINE_MS)).toEqual([]);
    expect(daemon.proc.exitCode).toBeNull();
  }, 30_000);
});
