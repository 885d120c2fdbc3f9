import { isCompiledBinary } from "../compiled";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { parseAddr } from "../config/addr";
import type { Config } from "../config/types";

export type ServicePlatform = "linux" | "darwin";

/** Everything a unit file needs, resolved to absolute paths. */
export interface ServiceSpec {
  name: string;
  platform: ServicePlatform;
  /** A per-user service (systemd --user, a launchd agent) rather than a system one. */
  user: boolean;
  /** argv that starts the daemon: the binary (or bun and main.ts from source), `serve`, `-c`, the config. */
  command: string[];
  configPath: string;
  /** Directory of the config's state_file; the service must be able to write it. */
  stateDir: string;
  /** The dedicated state directory the service manager creates (systemd StateDirectory, or ours on macOS). */
  managedStateDir: string;
  /** How long systemd/launchd waits after SIGTERM before killing: the drain time plus a margin. */
  stopTimeoutSec: number;
  /** Binds a port below 1024, so needs CAP_NET_BIND_SERVICE. */
  privilegedPort: boolean;
  /** System units only: run as this existing user instead of a transient one (systemd DynamicUser). */
  runAs?: string;
  home: string;
}

export interface SpecOptions {
  name: string;
  platform: ServicePlatform;
  user: boolean;
  configPath: string;
  runAs?: string;
  home?: string;
  /** The running program: argv[0] of a compiled binary, or bun plus main.ts. */
  self?: string[];
}

export function serviceSpec(config: Config, options: SpecOptions): ServiceSpec {
  const home = options.home ?? homedir();
  const gatewayPorts = Object.values(config.pools).map((p) =>
    p.upstream ? (parseAddr(p.upstream.listen)?.port ?? 0) : 0,
  );
  const ports = [config.server.port, ...gatewayPorts];
  return {
    name: options.name,
    platform: options.platform,
    user: options.user,
    command: [...(options.self ?? selfCommand()), "serve", "-c", options.configPath],
    configPath: options.configPath,
    stateDir: config.stateFile === ":memory:" ? managedStateDir(options, home) : dirname(config.stateFile),
    managedStateDir: managedStateDir(options, home),
    stopTimeoutSec: (config.shutdownTimeoutSec ?? 30) + 15,
    privilegedPort: ports.some((p) => p > 0 && p < 1024),
    runAs: options.user ? undefined : options.runAs,
    home,
  };
}

/**
 * How to start this same keypool again: a compiled binary is its own executable; from source it is
 * bun with main.ts. Both by absolute path, since a service manager has no useful PATH or cwd.
 */
export function selfCommand(): string[] {
  return isCompiledBinary() ? [process.execPath] : [process.execPath, Bun.main];
}

function managedStateDir(options: Pick<SpecOptions, "name" | "platform" | "user">, home: string): string {
  if (options.platform === "darwin") {
    return options.user
      ? join(home, "Library", "Application Support", options.name)
      : join("/usr/local/var/lib", options.name);
  }
  return options.user ? join(home, ".local", "state", options.name) : join("/var/lib", options.name);
}

/** Where the unit file goes by default. */
export function defaultUnitDir(platform: ServicePlatform, user: boolean, home = homedir()): string {
  if (platform === "darwin") return user ? join(home, "Library", "LaunchAgents") : "/Library/LaunchDaemons";
  return user ? join(home, ".config", "systemd", "user") : "/etc/systemd/system";
}

export function unitFileName(platform: ServicePlatform, name: string): string {
  return platform === "darwin" ? `${name}.plist` : `${name}.service`;
}
