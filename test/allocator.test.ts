import { describe, expect, it } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { PURGE_DELAY_VARIABLE, isLongRunning } from "../src/daemon/allocator";
import { spawnDaemon } from "./helpers/spawn-daemon";
import { tempDir } from "./helpers/temp-dir";

/*
 * `keypool serve` starts again in place with Bun's allocator told to keep the memory it frees (see
 * src/daemon/allocator.ts). What a process started with is in /proc, so these run where there is one.
 */

/** The environment and command line of a running process, as the kernel holds them. */
function processSeen(pid: number): { env: Map<string, string>; cmdline: string[] } {
  const env = new Map<string, string>();
  for (const entry of readFileSync(`/proc/${pid}/environ`, "utf8").split("\0")) {
    const at = entry.indexOf("=");
    if (at > 0) env.set(entry.slice(0, at), entry.slice(at + 1));
  }
  return { env, cmdline: readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean) };
}

function servingDir() {
  const dir = tempDir("keypool-allocator-");
  writeFileSync(dir.file("tokens.txt"), "k1,sk-allocator-aaaaaaaaaaaaaaaa\n");
  writeFileSync(
    dir.file("keypool.yaml"),
    "tokens_file: tokens.txt\nstate_file: state.db\nserver:\n  addr: 127.0.0.1:0\n",
  );
  return dir;
}

describe("which commands restart with the allocator settings", () => {
  it.each([
    [["serve", "-c", "keypool.yaml"], true],
    [["proxy"], true],
    [["demo"], true],
    [["check"], false],
    [["status", "serve"], false],
    [[], false],
  ])("%j → %p", (args, expected) => {
    expect(isLongRunning(args)).toBe(expected);
  });
});

describe.skipIf(process.platform !== "linux")("keypool serve and the allocator", () => {
  it("runs as the same process, with the same command line, and the allocator told to keep freed memory", async () => {
    using dir = servingDir();
    await using daemon = await spawnDaemon(["serve", "-c", "keypool.yaml"], {}, { cwd: dir.path, cleanEnv: true });
    const seen = processSeen(daemon.proc.pid);
    expect(seen.env.get(PURGE_DELAY_VARIABLE)).toBe("-1");
    expect(seen.cmdline.slice(-3)).toEqual(["serve", "-c", "keypool.yaml"]);
    expect((await fetch(`${daemon.url}/take`)).status).toBe(200);
    daemon.proc.kill("SIGTERM");
    expect(await daemon.proc.exited).toBe(0);
  });

  it("leaves a value the user set alone (the way to opt out)", async () => {
    using dir = servingDir();
    await using daemon = await spawnDaemon(
      ["serve", "-c", "keypool.yaml"],
      { [PURGE_DELAY_VARIABLE]: "10" },
      { cwd: dir.path, cleanEnv: true },
    );
    expect(processSeen(daemon.proc.pid).env.get(PURGE_DELAY_VARIABLE)).toBe("10");
    expect((await fetch(`${daemon.url}/take`)).status).toBe(200);
  });
});
