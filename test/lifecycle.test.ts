import { describe, expect, it } from "bun:test";
import { existsSync, statSync, writeFileSync } from "node:fs";
import { parseConfig } from "../src/config/load";
import type { ConfigError } from "../src/config/errors";
import { startFakeUpstream } from "./helpers/fake-upstream";
import { heldStream, integrityCheck, openStream, startServeWithGateway, writeGatewayConfig } from "./helpers/lifecycle";
import { runKeypool } from "./helpers/run-keypool";
import { spawnDaemon } from "./helpers/spawn-daemon";
import { tempDir } from "./helpers/temp-dir";

describe("graceful shutdown", () => {
  it("on SIGTERM refuses new connections, lets an in-flight stream finish, closes the store and exits 0", async () => {
    using dir = tempDir();
    const stream = heldStream();
    await using upstream = await startFakeUpstream(stream.handler);
    await using daemon = await startServeWithGateway(writeGatewayConfig(dir, upstream));

    const open = await openStream(daemon.gatewayUrl);
    expect(open.first).toBe("data: first\n\n");
    daemon.proc.kill("SIGTERM");
    const shuttingDown = JSON.parse(await daemon.waitForLog(/"msg":"shutting down/));
    expect(shuttingDown).toMatchObject({ signal: "SIGTERM", shutdown_timeout_sec: 30 });

    // The listeners closed before the line was written; the stream is still open.
    await expect(fetch(`${daemon.url}/status`)).rejects.toThrow();
    expect(daemon.proc.exitCode).toBeNull();

    stream.finish();
    expect(await open.rest).toEqual({ text: "data: first\n\ndata: last\n\n" });
    expect(await daemon.proc.exited).toBe(0);
    expect(daemon.log()).toContain('"msg":"keypool stopped"');
    expect(integrityCheck(dir.file("state.db"))).toBe("ok");
    // Checkpointed on close: nothing left in the write-ahead log.
    expect(existsSync(dir.file("state.db-wal")) ? statSync(dir.file("state.db-wal")).size : 0).toBe(0);
  });

  it("exits at once with 130 on a second signal while a stream is still open", async () => {
    using dir = tempDir();
    const stream = heldStream();
    await using upstream = await startFakeUpstream(stream.handler);
    await using daemon = await startServeWithGateway(writeGatewayConfig(dir, upstream));

    const open = await openStream(daemon.gatewayUrl);
    daemon.proc.kill("SIGTERM");
    await daemon.waitForLog(/"msg":"shutting down/);
    daemon.proc.kill("SIGINT");
    expect(await daemon.proc.exited).toBe(130);
    expect(daemon.log()).toContain('"msg":"second signal: exiting at once');
    expect((await open.rest).error).toBeInstanceOf(Error);
    stream.finish();
    // Cut short without a checkpoint, the database is still whole: WAL makes every commit atomic.
    expect(integrityCheck(dir.file("state.db"))).toBe("ok");
  });

  it("cuts streams still open after shutdown_timeout_sec and still exits 0", async () => {
    using dir = tempDir();
    const stream = heldStream();
    await using upstream = await startFakeUpstream(stream.handler);
    await using daemon = await startServeWithGateway(writeGatewayConfig(dir, upstream, "shutdown_timeout_sec: 0.2\n"));

    const open = await openStream(daemon.gatewayUrl);
    daemon.proc.kill("SIGTERM");
    expect(await daemon.proc.exited).toBe(0);
    expect(daemon.log()).toContain('"msg":"shutdown timeout: requests still in flight were cut"');
    expect((await open.rest).error).toBeInstanceOf(Error);
    stream.finish();
    expect(integrityCheck(dir.file("state.db"))).toBe("ok");
  });
});

describe("a second daemon on the same config", () => {
  it("says which address is taken and what to do, and exits 1", async () => {
    using dir = tempDir();
    writeFileSync(dir.file("tokens.txt"), "k1,sk-lifecycle-bbbbbbbbbbbbbbbb\n");
    writeFileSync(
      dir.file("keypool.yaml"),
      "tokens_file: tokens.txt\nstate_file: state.db\nserver:\n  addr: 127.0.0.1:0\n",
    );
    await using first = await spawnDaemon(["serve", "-c", dir.file("keypool.yaml")]);
    const port = new URL(first.url).port;

    const second = await runKeypool(["serve", "-c", dir.file("keypool.yaml"), "--port", port]);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`cannot listen on 127.0.0.1:${port} (server.addr): the address is already in use`);
    expect(second.stderr).toContain("set server.addr to a free port");
    // The first one is untouched.
    expect((await fetch(`${first.url}/status`)).status).toBe(200);
  });
});

describe("shutdown_timeout_sec", () => {
  const load = (yaml: string) => parseConfig(`tokens_file: t.txt\n${yaml}`, { baseDir: "/nonexistent", env: {} });

  it("defaults to 30 seconds and rejects a negative value", () => {
    const issues = (() => {
      try {
        load("shutdown_timeout_sec: -1\n");
      } catch (error) {
        return (error as ConfigError).issues;
      }
      return [];
    })();
    expect(issues).toContain("shutdown_timeout_sec: expected a number of seconds ≥ 0 and ≤ 604800, got -1");
  });
});
