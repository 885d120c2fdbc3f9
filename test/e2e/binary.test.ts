import { describe, expect, it } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { XMLParser } from "fast-xml-parser";
import packageJson from "../../package.json" with { type: "json" };
import { DOCS_PATHS } from "../../src/http/docs-routes";
import { startFakeUpstream } from "../helpers/fake-upstream";
import { KEYPOOL_BIN, binaryBuilt } from "../helpers/keypool-binary";
import {
  heldStream,
  integrityCheck,
  openStream,
  startServeWithGateway,
  writeGatewayConfig,
} from "../helpers/lifecycle";
import { runKeypool } from "../helpers/run-keypool";
import { spawnDaemon } from "../helpers/spawn-daemon";
import { tempDir } from "../helpers/temp-dir";

/*
 * The compiled binary, run as a user runs it: from a directory that holds no keypool sources, with
 * nothing but its own file. Build it first: `npm run build -- --target linux-x64` (.ci/run does).
 */

const GOOD = "sk-e2e-good-5d8c2a7f1b9e4036";
const BAD = "sk-e2e-bad-0a3f6e1c9d2b7485";
const bin = { command: [KEYPOOL_BIN] };

function workDir() {
  const dir = tempDir("keypool-e2e-");
  writeFileSync(dir.file("tokens.txt"), `good,${GOOD}\nbad,${BAD}\n`);
  return dir;
}

describe.skipIf(!binaryBuilt)(`the keypool binary (${KEYPOOL_BIN})`, () => {
  it("prints help listing every command, and exits 0", async () => {
    using dir = workDir();
    const result = await runKeypool(["--help"], { ...bin, cwd: dir.path });
    expect(result.code).toBe(0);
    for (const command of [
      "serve",
      "proxy",
      "demo",
      "check",
      "status",
      "take",
      "release",
      "keys",
      "config",
      "service",
      "version",
    ]) {
      expect(result.stdout).toContain(command);
    }
  });

  it("reports the version from package.json and the git commit it was built from", async () => {
    const result = await runKeypool(["version", "--json"], bin);
    expect(result.code).toBe(0);
    const info = JSON.parse(result.stdout);
    expect(info).toEqual({
      version: packageJson.version,
      commit: expect.stringMatching(/^([0-9a-f]{7,40}(-dirty)?|unknown)$/),
      bun: expect.any(String),
      platform: `${process.platform}-${process.arch}`,
    });
    expect((await runKeypool(["--version"], bin)).stdout.trim()).toBe(packageJson.version);
  });

  it("validates a config with secrets masked (exit 0), and names the mistake in a broken one (exit 2)", async () => {
    using dir = workDir();
    writeFileSync(dir.file("ok.yaml"), "tokens_file: tokens.txt\n");
    writeFileSync(dir.file("broken.yaml"), "tokens_file: tokens.txt\nrotaton: lru\n");
    const ok = await runKeypool(["config", "validate", "-c", "ok.yaml"], { ...bin, cwd: dir.path });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain("id: good");
    expect(ok.stdout).not.toContain(GOOD);
    const broken = await runKeypool(["config", "validate", "-c", "broken.yaml"], { ...bin, cwd: dir.path });
    expect(broken).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('rotaton: unknown key (did you mean "rotation"?)'),
    });
  });

  it("check exits 0 with enough live keys, 1 with fewer than --min-live, 2 on a config error; JUnit parses", async () => {
    using dir = workDir();
    await using upstream = await startFakeUpstream(
      (req) => new Response("{}", { status: req.headers.get("authorization") === `Bearer ${GOOD}` ? 200 : 401 }),
    );
    writeFileSync(
      dir.file("keypool.yaml"),
      `tokens_file: tokens.txt\ncheck:\n  url: ${upstream.url}/v1/models\n  headers: { Authorization: "Bearer {token}" }\n`,
    );
    const check = (...args: string[]) =>
      runKeypool(["check", "-c", "keypool.yaml", ...args], { ...bin, cwd: dir.path });

    const table = await check();
    expect([table.code, table.stdout.trimEnd().split("\n").at(-1)]).toEqual([0, "1/2 live"]);
    expect((await check("--min-live", "2")).code).toBe(1);
    expect((await runKeypool(["check", "-c", "missing.yaml"], { ...bin, cwd: dir.path })).code).toBe(2);

    const junit = await check("--format", "junit", "--min-live", "2");
    expect(junit.code).toBe(1);
    const report = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "" }).parse(junit.stdout);
    expect([report.testsuites.tests, report.testsuites.failures]).toEqual(["3", "2"]);
    expect(junit.stdout + table.stdout).not.toContain(GOOD);
  });

  it("serves take and release, and stops on SIGTERM with exit 0 and a sound database", async () => {
    using dir = workDir();
    writeFileSync(
      dir.file("keypool.yaml"),
      "tokens_file: tokens.txt\nstate_file: state.db\nserver:\n  addr: 127.0.0.1:0\n",
    );
    const started = performance.now();
    await using daemon = await spawnDaemon(["serve", "-c", "keypool.yaml"], {}, { ...bin, cwd: dir.path });
    const take = await fetch(`${daemon.url}/take`);
    const startupMs = performance.now() - started;
    expect(take.status).toBe(200);
    // Measured, not asserted: how long a user waits from exec to a first answer (see bench/startup.ts).
    console.log(`binary startup to first served request: ${startupMs.toFixed(0)} ms`);

    // Started again in place with the allocator keeping freed memory (src/daemon/allocator.ts).
    const environ = readFileSync(`/proc/${daemon.proc.pid}/environ`, "utf8").split("\0");
    expect(environ).toContain("MIMALLOC_PURGE_DELAY=-1");

    const lease = (await take.json()) as { id: string; lease: string; token: string };
    expect([GOOD, BAD]).toContain(lease.token);
    const release = await fetch(`${daemon.url}/release`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ lease: lease.lease, ok: true }),
    });
    expect(release.status).toBe(200);

    daemon.proc.kill("SIGTERM");
    expect(await daemon.proc.exited).toBe(0);
    expect(daemon.log()).toContain(`"store":"sqlite:${join(dir.path, "state.db")}"`);
    expect(daemon.log()).toContain('"msg":"keypool stopped"');
    expect(daemon.log() + daemon.stdout()).not.toContain(GOOD);
    expect(integrityCheck(dir.file("state.db"))).toBe("ok");
  });

  it("serves the Swagger UI, OpenAPI spec and dashboard from files embedded in the binary", async () => {
    using dir = workDir();
    writeFileSync(
      dir.file("keypool.yaml"),
      "tokens_file: tokens.txt\nstate_file: state.db\nserver:\n  addr: 127.0.0.1:0\n",
    );
    await using daemon = await spawnDaemon(["serve", "-c", "keypool.yaml"], {}, { ...bin, cwd: dir.path });
    // The working directory holds no node_modules: whatever answers came out of the binary itself.
    const answers = await Promise.all(
      [...DOCS_PATHS, "/ui"].map(async (path) => {
        const response = await fetch(`${daemon.url}${path}`);
        return { path, status: response.status, empty: (await response.arrayBuffer()).byteLength === 0 };
      }),
    );
    expect(answers).toEqual([...DOCS_PATHS, "/ui"].map((path) => ({ path, status: 200, empty: false })));
  });

  it("finishes an in-flight gateway stream after SIGTERM before exiting 0", async () => {
    using dir = workDir();
    const stream = heldStream();
    await using upstream = await startFakeUpstream(stream.handler);
    await using daemon = await startServeWithGateway(writeGatewayConfig(dir, upstream), bin);
    const open = await openStream(daemon.gatewayUrl);
    daemon.proc.kill("SIGTERM");
    await daemon.waitForLog(/"msg":"shutting down/);
    stream.finish();
    expect(await open.rest).toEqual({ text: "data: first\n\ndata: last\n\n" });
    expect(await daemon.proc.exited).toBe(0);
    expect(integrityCheck(dir.file("state.db"))).toBe("ok");
  });

  it("proxies to a fake upstream with a key injected", async () => {
    using dir = workDir();
    await using upstream = await startFakeUpstream(() => Response.json({ id: "chatcmpl-1", choices: [] }));
    writeFileSync(dir.file("tokens.txt"), `good,${GOOD}\n`);
    writeFileSync(
      dir.file("keypool.yaml"),
      `tokens_file: tokens.txt\nstate_file: state.db\nserver:\n  addr: 127.0.0.1:0\nupstream:\n  listen: 127.0.0.1:0\n  base_url: ${upstream.url}\n`,
    );
    await using daemon = await spawnDaemon(["proxy", "-c", "keypool.yaml"], {}, { ...bin, cwd: dir.path });
    const gatewayUrl = JSON.parse(await daemon.waitForLog(/"msg":"keypool gateway listening"/)).url as string;
    const response = await fetch(`${gatewayUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect([response.status, response.headers.get("x-keypool-key"), await response.json()]).toEqual([
      200,
      "good",
      { id: "chatcmpl-1", choices: [] },
    ]);
    expect(upstream.calls[0]!.headers.authorization).toBe(`Bearer ${GOOD}`);
    daemon.proc.kill("SIGTERM");
    expect(await daemon.proc.exited).toBe(0);
  });

  it("runs the demo once on free ports and exits 0", async () => {
    using dir = workDir();
    const result = await runKeypool(["demo", "--once", "--port", "0", "--gateway-port", "0", "--state", "demo.db"], {
      ...bin,
      cwd: dir.path,
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("keypool demo");
    expect(result.stdout).toMatch(/request 1: HTTP 200 from key demo-ok/);
  });

  it("prints a systemd unit that starts this binary by its absolute path", async () => {
    using dir = workDir();
    writeFileSync(dir.file("keypool.yaml"), "tokens_file: tokens.txt\n");
    const result = await runKeypool(["service", "install", "-c", "keypool.yaml", "--dry-run", "--platform", "linux"], {
      ...bin,
      cwd: dir.path,
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`\nExecStart=${KEYPOOL_BIN} serve -c ${dir.file("keypool.yaml")}\n`);
  });
});

/**
 * Optional: the arm64 build's `version` under qemu-user, when this machine has it all — Debian's
 * `apt-get install -y qemu-user libc6-arm64-cross` and `npm run build -- --target linux-arm64`.
 */
const ARM64_BIN = join(KEYPOOL_BIN, "..", "keypool-linux-arm64");
const ARM64_SYSROOT = "/usr/aarch64-linux-gnu";
const qemu = Bun.which("qemu-aarch64") ?? Bun.which("qemu-aarch64-static");
const canEmulate =
  Boolean(qemu) &&
  existsSync(ARM64_BIN) &&
  existsSync(join(ARM64_SYSROOT, "lib/ld-linux-aarch64.so.1")) &&
  process.arch !== "arm64";
describe.skipIf(!canEmulate)("the linux-arm64 binary under qemu-user", () => {
  it("prints its version", async () => {
    const result = await runKeypool(["version"], { command: [qemu!, "-L", ARM64_SYSROOT, ARM64_BIN] });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`keypool ${packageJson.version}`);
    expect(result.stdout).toContain("linux-arm64");
  });
});
