import { join } from "node:path";
import type { ServiceSpec } from "./service-spec";

/**
 * A launchd property list for `keypool serve`: a LaunchDaemon (system) or a LaunchAgent (--user).
 * KeepAlive restarts it when it exits with an error, as systemd's Restart=on-failure does.
 */
export function renderLaunchdPlist(spec: ServiceSpec): string {
  const logFile = logPath(spec);
  const entries: Array<[string, string]> = [
    ["Label", string(spec.name)],
    ["ProgramArguments", `<array>\n${spec.command.map((a) => `\t\t${string(a)}`).join("\n")}\n\t</array>`],
    ["WorkingDirectory", string(spec.managedStateDir)],
    ["RunAtLoad", "<true/>"],
    ["KeepAlive", "<dict>\n\t\t<key>SuccessfulExit</key>\n\t\t<false/>\n\t</dict>"],
    // launchd sends SIGTERM, then SIGKILL after this many seconds: leave time for the drain.
    ["ExitTimeOut", `<integer>${spec.stopTimeoutSec}</integer>`],
    ["ThrottleInterval", "<integer>5</integer>"],
    ["StandardOutPath", string(logFile)],
    ["StandardErrorPath", string(logFile)],
    ["Umask", "<integer>63</integer>"], // 0077
  ];
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    "<dict>",
    ...entries.map(([key, value]) => `\t<key>${key}</key>\n\t${value}`),
    "</dict>",
    "</plist>",
    "",
  ].join("\n");
}

export function logPath(spec: ServiceSpec): string {
  return spec.user
    ? join(spec.home, "Library", "Logs", `${spec.name}.log`)
    : join("/usr/local/var/log", `${spec.name}.log`);
}

function string(value: string): string {
  return `<string>${value.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")}</string>`;
}
