import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { renderLaunchdPlist, logPath } from "./launchd-plist";
import { type ServiceSpec, unitFileName } from "./service-spec";
import { renderSystemdUnit } from "./systemd-unit";

export interface UnitFile {
  path: string;
  text: string;
}

export function unitFile(spec: ServiceSpec, unitDir: string): UnitFile {
  return {
    path: join(unitDir, unitFileName(spec.platform, spec.name)),
    text: spec.platform === "darwin" ? renderLaunchdPlist(spec) : renderSystemdUnit(spec),
  };
}

export function writeUnit(unit: UnitFile, spec: ServiceSpec): void {
  mkdirSync(join(unit.path, ".."), { recursive: true });
  // launchd creates neither the working directory nor the log's; systemd makes StateDirectory itself.
  if (spec.platform === "darwin") {
    mkdirSync(spec.managedStateDir, { recursive: true, mode: 0o700 });
    mkdirSync(join(logPath(spec), ".."), { recursive: true });
  }
  writeFileSync(unit.path, unit.text, { mode: 0o644 });
}

export function removeUnit(path: string): boolean {
  if (!existsSync(path)) return false;
  rmSync(path);
  return true;
}

/** The commands that load and start the unit, to print after installing it. */
export function enableCommands(spec: ServiceSpec, unitPath: string): string[] {
  if (spec.platform === "darwin") {
    return spec.user
      ? [
          `launchctl bootstrap gui/$(id -u) ${quote(unitPath)}`,
          `launchctl print gui/$(id -u)/${spec.name}`,
          `tail -f ${quote(logPath(spec))}`,
        ]
      : [
          `sudo launchctl bootstrap system ${quote(unitPath)}`,
          `sudo launchctl print system/${spec.name}`,
          `tail -f ${quote(logPath(spec))}`,
        ];
  }
  const ctl = spec.user ? "systemctl --user" : "sudo systemctl";
  return [
    `${ctl} daemon-reload`,
    `${ctl} enable --now ${spec.name}`,
    `${ctl} status ${spec.name}`,
    `journalctl ${spec.user ? "--user " : ""}-u ${spec.name} -f`,
    ...(spec.user ? [`loginctl enable-linger "$USER"   # keep it running when you are logged out`] : []),
  ];
}

/**
 * argv lists that stop and unload the service before its file goes, and tidy up after; a failure
 * before is fine (the service may never have been loaded).
 */
export function disableCommands(
  platform: "linux" | "darwin",
  user: boolean,
  name: string,
): { before: string[][]; after: string[][] } {
  if (platform === "darwin") {
    return {
      before: [["launchctl", "bootout", user ? `gui/${process.getuid?.() ?? 0}/${name}` : `system/${name}`]],
      after: [],
    };
  }
  const ctl = user ? ["systemctl", "--user"] : ["systemctl"];
  return { before: [[...ctl, "disable", "--now", name]], after: [[...ctl, "daemon-reload"]] };
}

function quote(path: string): string {
  return /^[\w@+=:,./-]+$/.test(path) ? path : `'${path.replaceAll("'", `'\\''`)}'`;
}
