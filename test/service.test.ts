import { describe, expect, it } from "bun:test";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { XMLParser } from "fast-xml-parser";
import { runKeypool } from "./helpers/run-keypool";
import { tempDir } from "./helpers/temp-dir";

const MAIN = `${import.meta.dir.replace(/\/test$/, "")}/src/main.ts`;

function writeConfig(dir: ReturnType<typeof tempDir>, extra = ""): string {
  writeFileSync(dir.file("tokens.txt"), "k1,sk-service-aaaaaaaaaaaaaaaa\n");
  writeFileSync(dir.file("keypool.yaml"), `tokens_file: tokens.txt\nstate_file: state.db\n${extra}`);
  return dir.file("keypool.yaml");
}

/** `Key=value` lines of a unit, grouped by key (some keys may repeat). */
function unitEntries(text: string): Record<string, string[]> {
  const entries: Record<string, string[]> = {};
  for (const line of text.split("\n")) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (match) (entries[match[1]!] ??= []).push(match[2]!);
  }
  return entries;
}

describe("keypool service install --dry-run", () => {
  it("prints a systemd unit that runs this keypool on the config by absolute path, and writes nothing", async () => {
    using dir = tempDir();
    const config = writeConfig(dir, "shutdown_timeout_sec: 20\n");
    const unitDir = dir.file("units");
    // A relative -c, run from the config's directory: the unit must still name it absolutely.
    const result = await runKeypool(
      ["service", "install", "-c", "keypool.yaml", "--dry-run", "--platform", "linux", "--unit-dir", unitDir],
      { cwd: dir.path },
    );
    expect(result.code).toBe(0);
    expect(result.stdout.split("\n")[0]).toBe(`# ${unitDir}/keypool.service (dry run: nothing written)`);
    expect(existsSync(unitDir)).toBe(false);

    const unit = unitEntries(result.stdout);
    expect(unit).toMatchObject({
      ExecStart: [`${process.execPath} ${MAIN} serve -c ${config}`],
      ExecReload: ["/bin/kill -HUP $MAINPID"],
      Restart: ["on-failure"],
      KillSignal: ["SIGTERM"],
      // The drain time plus a margin, so systemd never SIGKILLs a draining keypool.
      TimeoutStopSec: ["35s"],
      StateDirectory: ["keypool"],
      WorkingDirectory: ["%S/keypool"],
      // state.db sits beside the config, outside the state directory: the unit lets it be written.
      ReadWritePaths: [dir.path],
      DynamicUser: ["yes"],
      NoNewPrivileges: ["yes"],
      ProtectSystem: ["strict"],
      CapabilityBoundingSet: [""],
      WantedBy: ["multi-user.target"],
    });
    expect(unit.MemoryDenyWriteExecute).toBeUndefined();
    expect(result.stdout).toContain("note: state_file is in");
    expect(result.stdout).toContain("  sudo systemctl enable --now keypool\n");
  });

  it("makes a --user unit with the user's targets and commands, and a capability for a port below 1024", async () => {
    using dir = tempDir();
    writeConfig(dir, "server:\n  addr: 127.0.0.1:443\n");
    const result = await runKeypool(
      [
        "service",
        "install",
        "-c",
        dir.file("keypool.yaml"),
        "--dry-run",
        "--platform",
        "linux",
        "--user",
        "--name",
        "kp-test",
      ],
      {
        cwd: dir.path,
      },
    );
    expect(result.code).toBe(0);
    const unit = unitEntries(result.stdout);
    expect(unit.WantedBy).toEqual(["default.target"]);
    expect(unit.DynamicUser).toBeUndefined();
    expect(result.stdout).toContain("systemctl --user enable --now kp-test");
    expect(result.stdout).toContain("loginctl enable-linger");

    const system = unitEntries(
      (await runKeypool(["service", "install", "-c", dir.file("keypool.yaml"), "--dry-run", "--platform", "linux"]))
        .stdout,
    );
    expect(system.AmbientCapabilities).toEqual(["CAP_NET_BIND_SERVICE"]);
  });

  it("prints a launchd plist on darwin that parses as XML", async () => {
    using dir = tempDir();
    const config = writeConfig(dir);
    const result = await runKeypool([
      "service",
      "install",
      "-c",
      config,
      "--dry-run",
      "--platform",
      "darwin",
      "--user",
    ]);
    expect(result.code).toBe(0);
    const xml = result.stdout.slice(
      result.stdout.indexOf("<?xml"),
      result.stdout.indexOf("</plist>") + "</plist>".length,
    );
    const plist = new XMLParser().parse(xml).plist.dict;
    expect(plist.key).toEqual([
      "Label",
      "ProgramArguments",
      "WorkingDirectory",
      "RunAtLoad",
      "KeepAlive",
      "ExitTimeOut",
      "ThrottleInterval",
      "StandardOutPath",
      "StandardErrorPath",
      "Umask",
    ]);
    expect(plist.array.string).toEqual([process.execPath, MAIN, "serve", "-c", config]);
    expect(result.stdout).toContain("launchctl bootstrap gui/$(id -u)");
  });

  it("refuses an invalid config with exit 2, before writing anything", async () => {
    using dir = tempDir();
    writeConfig(dir, "rotation: sideways\n");
    const result = await runKeypool([
      "service",
      "install",
      "-c",
      dir.file("keypool.yaml"),
      "--unit-dir",
      dir.file("units"),
      "--platform",
      "linux",
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("rotation");
    expect(existsSync(dir.file("units"))).toBe(false);
  });
});

describe("keypool service install and uninstall", () => {
  it("writes the unit, then removes it; a second uninstall says there is nothing to remove", async () => {
    using dir = tempDir();
    const config = writeConfig(dir);
    const unitDir = dir.file("units");
    const args = ["--platform", "linux", "--unit-dir", unitDir];

    const installed = await runKeypool(["service", "install", "-c", config, ...args]);
    expect(installed.code).toBe(0);
    expect(installed.stdout).toContain(`wrote ${unitDir}/keypool.service`);
    expect(readdirSync(unitDir)).toEqual(["keypool.service"]);

    expect(await runKeypool(["service", "uninstall", ...args])).toMatchObject({
      code: 0,
      stdout: `removed ${unitDir}/keypool.service\n`,
    });
    expect(readdirSync(unitDir)).toEqual([]);
    const again = await runKeypool(["service", "uninstall", ...args]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("nothing to uninstall");
  });

  it("rejects an unknown --platform with exit 2", async () => {
    const result = await runKeypool(["service", "uninstall", "--platform", "windows", "--dry-run"]);
    expect(result).toMatchObject({ code: 2, stderr: expect.stringContaining("--platform must be linux or darwin") });
  });
});
