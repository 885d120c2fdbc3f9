/**
 * Class 6 of issue 16: misuse is noticed. A state file deleted or replaced under a running daemon
 * stops it handing out keys (logged, /health 503, takes refused) instead of letting it lease the
 * same exclusive keys as a newcomer on the path; a loopback listener without credentials answers
 * only requests addressed to a loopback name (DNS rebinding); the README says which routes are public.
 * The state-file check is driven by `storeGuard.tick()`, never by waiting for its timer.
 */
import { describe, expect, it } from "bun:test";
import { chmodSync, copyFileSync, existsSync, renameSync, unlinkSync } from "node:fs";
import YAML from "yaml";
import { ConfigError } from "../../src/config/errors";
import { openPool } from "../../src/lib";
import { ManualClock } from "../../src/pool/clock";
import { startTestDaemon } from "../helpers/daemon";
import { startGateway, TOKENS } from "../helpers/gateway-harness";
import { tempDir } from "../helpers/temp-dir";
import { canary, leaksOf } from "./_canary";

const LEAK = canary("misuse");
const POOL_TOKENS = { a: TOKENS.a, [LEAK.id]: LEAK.token };

/** A daemon with a gateway whose keys are exclusive (one lease each), as in the report. */
async function exclusiveDaemon() {
  const gw = await startGateway({
    tokens: POOL_TOKENS,
    handler: () => Response.json({ ok: true }),
    config: (fakeUrl) => ({
      tokens_file: "tokens.txt",
      state_file: "state.db",
      cooldown_sec: 0,
      max_concurrency: 1,
      server: { addr: "127.0.0.1:0" },
      upstream: { listen: "127.0.0.1:0", base_url: fakeUrl, cooldown_sec: 0 },
    }),
  });
  return { gw, kp: gw.kp, stateFile: gw.kp.dir.file("state.db"), [Symbol.asyncDispose]: () => gw[Symbol.asyncDispose]() };
}

function tokensOf(tokens: Record<string, string>): string {
  return Object.entries(tokens).map(([id, token]) => `${id},${token}\n`).join("");
}

async function errorOf(response: Response): Promise<{ status: number; code: string; message: string }> {
  const body = (await response.json()) as { error: { code: string; message: string } };
  return { status: response.status, code: body.error.code, message: body.error.message };
}

describe("a state file lost under the daemon", () => {
  it("is noticed when deleted: logged, /health 503, takes refused on the API and the gateway", async () => {
    await using d = await exclusiveDaemon();
    expect((await d.kp.fetch("/health")).status).toBe(200);
    unlinkSync(d.stateFile);
    d.kp.daemon.storeGuard.tick();

    const health = await errorOf(await d.kp.fetch("/health"));
    expect(health).toMatchObject({ status: 503, code: "STATE_FILE_LOST" });
    expect(health.message).toContain(`${d.stateFile} was deleted`);
    expect(health.message).toContain("restart keypool");
    expect(await errorOf(await d.kp.fetch("/take"))).toMatchObject({ status: 503, code: "STATE_FILE_LOST" });
    const gateway = await fetch(`${d.gw.url}/v1/models`);
    expect(gateway.status).toBe(503);
    expect(((await gateway.json()) as { error: { code: string } }).error.code).toBe("state_file_lost");
    expect(d.gw.fake.calls.length).toBe(0);

    const lostLines = d.kp.logs.filter((line) => line.includes("state lost"));
    d.kp.daemon.storeGuard.tick();
    expect(d.kp.logs.filter((line) => line.includes("state lost"))).toEqual(lostLines);
    expect(lostLines).toHaveLength(1);
    expect(lostLines[0]).toContain('"level":"error"');
    expect(leaksOf([LEAK], d.kp.logs)).toEqual([]);
  });

  it("stops leasing once a second daemon on the same path has started a fresh file", async () => {
    await using d = await exclusiveDaemon();
    expect((await d.kp.fetch("/take")).status).toBe(200);
    // `rm state.db*`: a newcomer on the same path creates a fresh file, where every key is free again.
    for (const file of [d.stateFile, `${d.stateFile}-wal`, `${d.stateFile}-shm`]) unlinkSync(file);
    const tokens = tokensOf(POOL_TOKENS);
    const yaml = YAML.stringify({ tokens_file: "tokens.txt", state_file: d.stateFile, max_concurrency: 1, cooldown_sec: 0, server: { addr: "127.0.0.1:0" } });
    await using second = await startTestDaemon(yaml, tokens, { autoCheck: false });
    d.kp.daemon.storeGuard.tick();
    second.daemon.storeGuard.tick();
    // Only the newcomer hands keys out now: the two never lease one exclusive key each.
    expect(await errorOf(await d.kp.fetch("/take"))).toMatchObject({ status: 503, code: "STATE_FILE_LOST" });
    expect((await second.fetch("/health")).status).toBe(200);
    expect((await second.fetch("/take")).status).toBe(200);
  });

  it("keeps a newcomer from opening a fresh file beside the -wal and -shm of the deleted one", async () => {
    await using d = await exclusiveDaemon();
    unlinkSync(d.stateFile);
    const yaml = YAML.stringify({ tokens_file: "tokens.txt", state_file: d.stateFile, server: { addr: "127.0.0.1:0" } });
    const refused = await startTestDaemon(yaml, tokensOf(POOL_TOKENS), { autoCheck: false }).catch((error) => error);
    expect(refused).toBeInstanceOf(ConfigError);
    expect(refused.message).toContain(`exist without the state file ${d.stateFile}`);
    expect(refused.message).toContain("stop every keypool using it");
    expect(existsSync(d.stateFile)).toBe(false);
  });

  it("is noticed when replaced by another file (a restored backup, a copy renamed over it)", async () => {
    await using d = await exclusiveDaemon();
    copyFileSync(d.stateFile, `${d.stateFile}.copy`);
    renameSync(`${d.stateFile}.copy`, d.stateFile);
    d.kp.daemon.storeGuard.tick();
    const health = await errorOf(await d.kp.fetch("/health"));
    expect(health).toMatchObject({ status: 503, code: "STATE_FILE_LOST" });
    expect(health.message).toContain("replaced by another file");
    expect(await errorOf(await d.kp.fetch("/take"))).toMatchObject({ status: 503, code: "STATE_FILE_LOST" });
  });

  it("is noticed when only the write-ahead log is deleted (its commits would vanish for everyone else)", async () => {
    await using d = await exclusiveDaemon();
    unlinkSync(`${d.stateFile}-wal`);
    d.kp.daemon.storeGuard.tick();
    const health = await errorOf(await d.kp.fetch("/health"));
    expect(health).toMatchObject({ status: 503, code: "STATE_FILE_LOST" });
    expect(health.message).toContain("-wal was deleted");
  });

  it("serves again once the file it has open is back at the path", async () => {
    await using d = await exclusiveDaemon();
    renameSync(d.stateFile, `${d.stateFile}.moved`);
    d.kp.daemon.storeGuard.tick();
    expect((await d.kp.fetch("/health")).status).toBe(503);
    renameSync(`${d.stateFile}.moved`, d.stateFile);
    d.kp.daemon.storeGuard.tick();
    expect((await d.kp.fetch("/health")).status).toBe(200);
    expect((await d.kp.fetch("/take")).status).toBe(200);
    expect(d.kp.logs.some((line) => line.includes("back in place"))).toBe(true);
  });

  it("warns once when the state file is opened to other users", async () => {
    await using d = await exclusiveDaemon();
    chmodSync(d.stateFile, 0o644);
    d.kp.daemon.storeGuard.tick();
    d.kp.daemon.storeGuard.tick();
    const warnings = d.kp.logs.filter((line) => line.includes("open to other users"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("chmod 600");
    expect((await d.kp.fetch("/health")).status).toBe(200);
  });

  it("stops a library process's takes too, with no timer of its own", async () => {
    using dir = tempDir();
    const clock = new ManualClock(Date.parse("2026-12-01T00:00:00Z"));
    const stateFile = dir.file("lib.db");
    await using pool = await openPool({ keys: [TOKENS.a, LEAK.token], stateFile, clock, maxConcurrency: 1 });
    await pool.take();
    unlinkSync(stateFile);
    // The take looks at the file at most once a second.
    clock.advance(1000);
    const refused = await pool.take().catch((error) => error);
    expect(refused).toMatchObject({ code: "STATE_FILE_LOST" });
    expect(String(refused.message)).not.toContain(LEAK.token);
  });
});
