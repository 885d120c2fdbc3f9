import { describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { jsonPost } from "../helpers/daemon";
import { announceSkip, freshSchema, POSTGRES_URL, postgresBinDir, startOwnCluster } from "../helpers/postgres";
import { spawnDaemon } from "../helpers/spawn-daemon";
import { startTcpRelay, type TcpRelay } from "../helpers/tcp-relay";
import { tempDir } from "../helpers/temp-dir";

const BIN_DIR = postgresBinDir();
if (!BIN_DIR)
  console.warn(
    "[skip] test/store/postgres-outage.test.ts: no PostgreSQL server binaries (apt-get install postgresql, or source scripts/ci-postgres.sh)",
  );
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
  return {
    status: response.status,
    body: (await response.json()) as TakeResult["body"],
    ms: performance.now() - started,
  };
}

// `keypool serve` on a two-key pool whose store is the PostgreSQL database at `url`.
async function serveWith(dir: ReturnType<typeof tempDir>, url: string, maxConnections?: number, extra = "") {
  writeFileSync(dir.file("tokens.txt"), "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\nb,sk-test-bbbbbbbbbbbbbbbbbbbbbbbb\n");
  const store = `  postgres:\n    url: ${url}\n    timeout_sec: ${TIMEOUT_SEC}\n${maxConnections ? `    max_connections: ${maxConnections}\n` : ""}`;
  writeFileSync(
    dir.file("keypool.yaml"),
    `tokens_file: tokens.txt\ncooldown_sec: 0\n${extra}server:\n  addr: 127.0.0.1:0\nstore:\n${store}`,
  );
  return spawnDaemon(["serve", "-c", dir.file("keypool.yaml")], { NO_COLOR: "1" });
}

// Takes until one is served, at most `attempts` times, and returns every answer on the way.
async function takeUntilServed(daemonUrl: string, attempts = 10): Promise<TakeResult[]> {
  const results: TakeResult[] = [];
  for (let i = 0; i < attempts && results.at(-1)?.status !== 200; i++) results.push(await take(daemonUrl));
  return results;
}

/** A schema of its own on the shared cluster, reached through a relay the test can freeze, cut or strand. */
async function schemaBehindRelay(): Promise<AsyncDisposable & { relay: TcpRelay; url: string }> {
  const schema = await freshSchema();
  const server = new URL(POSTGRES_URL!);
  const relay = startTcpRelay(server.hostname, Number(server.port));
  const url = new URL(schema.url);
  url.port = String(relay.port);
  return {
    relay,
    url: url.toString(),
    async [Symbol.asyncDispose]() {
      await relay[Symbol.asyncDispose]();
      await schema[Symbol.asyncDispose]();
    },
  };
}

/** Leases in flight across the pool, re-read after a take+release (which lets the store reclaim) until none are left or `withinMs` passes. */
async function inFlightSettles(daemonUrl: string, withinMs: number): Promise<number> {
  const until = performance.now() + withinMs;
  for (;;) {
    const status = (await (await fetch(`${daemonUrl}/status`)).json()) as { keys: Array<{ in_flight: number }> };
    const inFlight = status.keys.reduce((sum, k) => sum + k.in_flight, 0);
    if (inFlight === 0 || performance.now() > until) return inFlight;
    const lease = await take(daemonUrl);
    if (lease.status === 200) await fetch(`${daemonUrl}/release`, jsonPost({ lease: lease.body.lease, ok: true }));
  }
}

/** Takes the store has counted across the pool, re-read until there are `count` or `withinMs` passes. */
async function requestsReach(daemonUrl: string, count: number, withinMs: number): Promise<number> {
  const until = performance.now() + withinMs;
  for (;;) {
    const status = (await (await fetch(`${daemonUrl}/status`)).json()) as { keys: Array<{ requests: number }> };
    const requests = status.keys.reduce((sum, k) => sum + k.requests, 0);
    if (requests >= count || performance.now() > until) return requests;
  }
}

describe.skipIf(!BIN_DIR)("when PostgreSQL goes away", () => {
  it("answers takes with 503 STORE_UNAVAILABLE within store.timeout_sec, stays up, and recovers by itself", async () => {
    // A cluster of this test's own, on its own port: stopping it disturbs no other test.
    await using cluster = await startOwnCluster(BIN_DIR!);
    using dir = tempDir();
    await using daemon = await serveWith(dir, cluster.url);

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
  // How a hang ends decides what the client must do: a host that wakes answers what it was sent; a
  // reboot resets the connections, so they must be opened again; a failover or a NAT that forgot its
  // flows leaves them open and silent for good, so they must be given up on. Each case has a relay
  // and a schema of its own, so they run at once.
  it.concurrent.each([
    ["answers again", (relay: TcpRelay) => relay.thaw()],
    [
      "resets every connection",
      (relay: TcpRelay) => {
        relay.cut();
        relay.thaw();
      },
    ],
    [
      "never answers the old connections",
      (relay: TcpRelay) => {
        relay.strand();
        relay.thaw();
      },
    ],
  ])(
    "answers 503 STORE_UNAVAILABLE within store.timeout_sec, stays up, and recovers when the server %s",
    async (_, end) => {
      await using db = await schemaBehindRelay();
      const { relay } = db;
      using dir = tempDir();
      // Fewer connections than concurrent takes: hung connections must not leave later takes waiting past the deadline.
      await using daemon = await serveWith(dir, db.url, 2);

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
      // The freeze outlasted the deadline: the connections were given up, and the log says so.
      expect(daemon.log()).toContain("PostgreSQL stopped answering on open connections past store.timeout_sec");
      expect(after.at(-1)?.status).toBe(200);
      expect(after.filter((r) => r.status !== 200 && r.status !== 503)).toEqual([]);
      expect(after.filter((r) => r.ms >= DEADLINE_MS)).toEqual([]);
      expect(daemon.proc.exitCode).toBeNull();

      // Takes the daemon gave up on may still have run once the server woke: their leases come back
      // within a reclaim pass or two (once a second, on the next take), not after lease_ttl_sec.
      await fetch(`${daemon.url}/release`, jsonPost({ lease: after.at(-1)!.body.lease, ok: true }));
      expect(await inFlightSettles(daemon.url, 10_000)).toBe(0);
    },
    30_000,
  );

  it("gives back the lease of a take it gave up on, when the server runs that take after all", async () => {
    await using db = await schemaBehindRelay();
    const { relay } = db;
    using dir = tempDir();
    // Capped keys: their takes are settled in SQL (a plain take is decided in memory, after a look at
    // the key log, and a look given up on hands nothing out).
    await using daemon = await serveWith(dir, db.url, undefined, "max_concurrency: 4\n");
    expect(await inFlightSettles(daemon.url, 0)).toBe(0);

    relay.freeze();
    const during = await take(daemon.url);
    expect([during.status, during.body.error?.code]).toEqual([503, "STORE_UNAVAILABLE"]);
    // The server wakes before the connection is given up on, and runs the take it was sent: a lease nobody holds.
    relay.thaw();
    expect(await requestsReach(daemon.url, 1, 10_000)).toBe(1);
    expect(await inFlightSettles(daemon.url, 10_000)).toBe(0);
  }, 30_000);
});
