import type { ServiceSpec } from "./service-spec";

/**
 * A systemd unit for `keypool serve`. Health checks and token refresh run inside the daemon, so one
 * long-running service is the whole deployment: no timer units, no cron.
 */
export function renderSystemdUnit(spec: ServiceSpec): string {
  const stateOutside = !isWithin(spec.stateDir, spec.managedStateDir);
  const lines = [
    "[Unit]",
    "Description=keypool: API key pools (broker, gateway, health checks)",
    "After=network-online.target",
    "Wants=network-online.target",
    "",
    "[Service]",
    "Type=simple",
    `ExecStart=${spec.command.map(quoteArg).join(" ")}`,
    // `systemctl reload` re-reads the config and tokens files (keypool reloads on SIGHUP).
    "ExecReload=/bin/kill -HUP $MAINPID",
    // Crashes and failed starts restart; a clean `systemctl stop` (exit 0) stays stopped.
    "Restart=on-failure",
    "RestartSec=2s",
    // keypool drains in-flight requests for shutdown_timeout_sec after SIGTERM; systemd must not SIGKILL it sooner.
    "KillSignal=SIGTERM",
    `TimeoutStopSec=${spec.stopTimeoutSec}s`,
    // SQLite state lives here (created and owned by systemd for the service's user).
    `StateDirectory=${spec.name}`,
    "StateDirectoryMode=0700",
    `WorkingDirectory=%S/${spec.name}`,
    ...(stateOutside ? [`ReadWritePaths=${quotePath(spec.stateDir)}`] : []),
    "UMask=0077",
    "LimitNOFILE=65536",
    ...(spec.user ? userHardening() : systemHardening(spec)),
    "",
    "[Install]",
    `WantedBy=${spec.user ? "default.target" : "multi-user.target"}`,
    "",
  ];
  return lines.join("\n");
}

/** Sandboxing that needs no privileges of its own, so it works in a --user unit too. */
function userHardening(): string[] {
  return ["NoNewPrivileges=yes"];
}

function systemHardening(spec: ServiceSpec): string[] {
  return [
    // A transient unprivileged user unless --run-as names one; either way never root.
    ...(spec.runAs ? [`User=${spec.runAs}`] : ["DynamicUser=yes"]),
    "NoNewPrivileges=yes",
    ...(spec.privilegedPort
      ? ["AmbientCapabilities=CAP_NET_BIND_SERVICE", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE"]
      : ["CapabilityBoundingSet="]),
    "ProtectSystem=strict",
    // The config may live in a home directory: readable, never writable.
    "ProtectHome=read-only",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces=yes",
    "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
    "SystemCallArchitectures=native",
    // Not MemoryDenyWriteExecute: the JavaScript JIT needs writable+executable memory.
  ];
}

/** systemd splits ExecStart on spaces and expands %: quote what needs it, double every %. */
function quoteArg(arg: string): string {
  const escaped = arg.replaceAll("%", "%%");
  return /^[\w@+=:,./-]+$/.test(escaped) ? escaped : `"${escaped.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

function quotePath(path: string): string {
  return /\s/.test(path) ? `"${path.replaceAll("%", "%%")}"` : path.replaceAll("%", "%%");
}

function isWithin(path: string, dir: string): boolean {
  return path === dir || path.startsWith(`${dir}/`);
}
