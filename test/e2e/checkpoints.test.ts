import { describe, expect, it } from "bun:test";
import { closeSync, openSync, readSync, watch, writeFileSync } from "node:fs";
import { KEYPOOL_BIN, binaryBuilt } from "../helpers/keypool-binary";
import { integrityCheck } from "../helpers/lifecycle";
import { spawnDaemon } from "../helpers/spawn-daemon";
import { tempDir } from "../helpers/temp-dir";

// Where SQLite's own automatic checkpoint would start the log over: 1,000 pages of 4 KiB.
const AUTOCHECKPOINT_BYTES = 1000 * 4096;
// Past the checkpointer's default for truncating the log once writes pause.
const BURST_BYTES = 1.5 * 1024 * 1024;
const MAX_PAIRS = 20_000;

/** Salt-1 of the write-ahead log's header changes each time a writer starts the log over after a checkpoint. */
function walHeader(path: string): { salt: number; bytes: number } {
  const bytes = Bun.file(`${path}-wal`).size;
  if (bytes < 32) return { salt: 0, bytes };
  const fd = openSync(`${path}-wal`, "r");
  try {
    const header = Buffer.alloc(32);
    readSync(fd, header, 0, 32, 0);
    return { salt: header.readUInt32BE(16), bytes };
  } finally {
    closeSync(fd);
  }
}

async function pair(url: string): Promise<void> {
  const lease = (await (await fetch(`${url}/take`)).json()) as { lease: string };
  const release = await fetch(`${url}/release`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ lease: lease.lease, ok: true }),
  });
  expect(release.status).toBe(200);
}

/** Resolves once the log file is empty; fs.watch says when it changes. */
async function emptied(walPath: string): Promise<void> {
  const { promise, resolve } = Promise.withResolvers<void>();
  const watcher = watch(walPath, () => {
    if (Bun.file(walPath).size === 0) resolve();
  });
  try {
    if (Bun.file(walPath).size > 0) await promise;
  } finally {
    watcher.close();
  }
}

/**
 * Only the checkpoint worker can have started the log over while it is shorter than where SQLite's own
 * checkpoint (what a worker that failed to start leaves in charge) runs, or truncated it once writes
 * stopped. Takes and releases until one of the two is seen.
 */
async function checkpointsOnTheWorker(command: string[] | undefined): Promise<void> {
  using dir = tempDir("keypool-e2e-");
  writeFileSync(dir.file("tokens.txt"), "a,sk-e2e-aaaaaaaaaaaaaaaa\nb,sk-e2e-bbbbbbbbbbbbbbbb\n");
  // Exclusive keys: every take and release commits (other takes are decided in memory and flushed in bulk).
  const config =
    "tokens_file: tokens.txt\ncooldown_sec: 0\nmax_concurrency: 1\nstate_file: state.db\nserver:\n  addr: 127.0.0.1:0\n";
  writeFileSync(dir.file("keypool.yaml"), config);
  await using daemon = await spawnDaemon(["serve", "-c", "keypool.yaml"], {}, { command, cwd: dir.path });
  const state = dir.file("state.db");
  await pair(daemon.url);
  const first = walHeader(state);
  let now = first;
  for (let pairs = 0; now.salt === first.salt && now.bytes < BURST_BYTES && pairs < MAX_PAIRS; pairs++) {
    await pair(daemon.url);
    now = walHeader(state);
  }
  expect(now.bytes).toBeLessThan(AUTOCHECKPOINT_BYTES);
  if (now.salt === first.salt) {
    expect(now.bytes).toBeGreaterThanOrEqual(BURST_BYTES);
    await emptied(`${state}-wal`);
  }
  daemon.proc.kill("SIGTERM");
  expect(await daemon.proc.exited).toBe(0);
  expect(integrityCheck(state)).toBe("ok");
}

describe("checkpoints off the request thread", () => {
  it("run on the worker under bun src/main.ts", () => checkpointsOnTheWorker(undefined), 30_000);
  it.skipIf(!binaryBuilt)(
    "run on the worker in the compiled binary",
    () => checkpointsOnTheWorker([KEYPOOL_BIN]),
    30_000,
  );
});
