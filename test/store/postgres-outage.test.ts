import { describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { jsonPost } from "../helpers/daemon";
import { postgresBinDir, startOwnCluster } from "../helpers/postgres";
import { spawnDaemon } from "../helpers/spawn-daemon";
import { tempDir } from "../helpers/temp-dir";

const BIN_DIR = postgresBinDir();
if (!BIN_DIR) console.warn("[skip] test/store/postgres-outage.test.ts: no PostgreSQL server binaries (apt-get install postgresql, or source scripts/ci-postgres.sh)");

const TIMEOUT_SEC = 2;

describe.skipIf(!BIN_DIR)("when PostgreSQL goes away", () => {
  it("answers takes with 503 STORE_UNAVAILABLE within store.timeout_sec, stays up, and recovers by itself", async () => {
    // A cluster of this test's own, on its own port: stopping it disturbs no other test.
    await using cluster = await startOwnCluster(BIN_DIR!);
    using dir = tempDir();
    writeFileSync(dir.file("tokens.txt"), "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\nb,sk-test-bbbbbbbbbbbbbbbbbbbbbbbb\n");
    writeFileSync(
      dir.file("keypool.yaml"),
      `tokens_file: tokens.txt\ncooldown_sec: 0\nserver:\n  addr: 127.0.0.1:0\nstore:\n  postgres:\n    url: ${cluster.url}\n    timeout_sec: ${TIMEOUT_SEC}\n`,
    );
    await using daemon = await spawnDaemon(["serve", "-c", dir.file("keypool.yaml")], { NO_COLOR: "1" });
    const take = async () => {
      const started = performance.now();
      const response = await fetch(`${daemon.url}/take`);
      return { status: response.status, body: (await response.json()) as { lease?: string; error?: { code: string } }, ms: performance.now() - started };
    };

    const before = await take();
    expect(before.status).toBe(200);
    await fetch(`${daemon.url}/release`, jsonPost({ lease: before.body.lease, ok: true }));

    await cluster.stop();
    for (let i = 0; i < 3; i++) {
      const during = await take();
      expect([during.status, during.body.error?.code]).toEqual([503, "STORE_UNAVAILABLE"]);
      expect(during.ms).toBeLessThan(TIMEOUT_SEC * 1000 + 500);
    }
    expect((await fetch(`${daemon.url}/health`)).status).toBe(200);

    await cluster.start();
    // The first takes may still land on connections the restart cut; the pool replaces them by itself.
    const after: number[] = [];
    for (let i = 0; i < 10 && after.at(-1) !== 200; i++) after.push((await take()).status);
    expect(after.at(-1)).toBe(200);
    expect(after.filter((s) => s !== 200 && s !== 503)).toEqual([]);
    expect(daemon.proc.exitCode).toBeNull();
  }, 30_000);
});
