/**
 * What `keypool setup --keys`, `start`, `stop` and `status` share for api-key-lb's users: where its
 * settings are, whether keypool already answers on its port, and its per-user service.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { ConfigError } from "../config/errors";
import {
  API_KEY_LB_SERVICE,
  apiKeyLbConfigPath,
  apiKeyLbSettings,
  apiKeyLbStateDir,
  homeOf,
  isApiKeyLbFile,
} from "../config/api-key-lb";
import { DEFAULT_CONFIG_FILE } from "../config/find-config";
import type { GatewayHealth } from "../gateway/health-report";
import { type ServicePlatform, defaultUnitDir, unitFileName } from "../service/service-spec";

type Env = Record<string, string | undefined>;

export interface ApiKeyLbContext {
  home: string;
  /** The api-key-lb config file in use, if any. */
  path?: string;
  port: number;
  env: Env;
}

/** The settings `start`, `stop` and `status` act on: --config, else the usual places, under the environment. */
export function apiKeyLbContext(configPath?: string, env: Env = process.env): ApiKeyLbContext {
  const home = homeOf({ env });
  const settings = apiKeyLbSettings({ path: configPath, env, home });
  const port = Number(settings.env.PORT);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    // Read like every other setting's mistake: a config error naming the variable, exit 2; the value is a
    // port or a typo, never a slice of something longer (which could be a key set one variable off).
    const text = String(settings.env.PORT);
    const got = /^[\d.eE+-]{1,12}$/.test(text) ? `"${text}"` : `a value of ${text.length} characters`;
    throw new ConfigError([`PORT: expected a port number 0–65535, got ${got}`]);
  }
  return { home, path: settings.path, port, env: settings.env };
}

/**
 * Whether a command with keypool's own -c default should act on api-key-lb's settings: it was given an
 * api-key-lb JSON file, or no -c and there is no keypool.yaml here but there are api-key-lb settings.
 */
export function usesApiKeyLb(configGiven: string | undefined, env: Env = process.env, cwd = process.cwd()): boolean {
  if (configGiven !== undefined) return isApiKeyLbFile(resolve(cwd, configGiven));
  if (existsSync(join(cwd, DEFAULT_CONFIG_FILE))) return false;
  if (env.API_KEY_LB_CONFIG || env.API_KEYS) return true;
  return existsSync(join(cwd, "api-key-lb.json")) || existsSync(apiKeyLbConfigPath(homeOf({ env })));
}

/** The value of -c/--config if it was on the command line (citty fills in the default otherwise). */
export function configFlag(rawArgs: string[], parsed: string | undefined): string | undefined {
  const given = rawArgs.some((a) => a === "-c" || a === "--config" || a.startsWith("--config=") || /^-c./.test(a));
  return given ? parsed : undefined;
}

/** The gateway's /health on the loopback port, or undefined when nothing keypool-like answers there. */
export async function fetchGatewayHealth(port: number): Promise<GatewayHealth | undefined> {
  if (port === 0) return undefined;
  try {
    const response = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(3000) });
    const body = (await response.json()) as GatewayHealth;
    return response.ok && Array.isArray(body?.keys) ? body : undefined;
  } catch {
    return undefined;
  }
}

export function platformHere(): ServicePlatform | undefined {
  return process.platform === "linux" || process.platform === "darwin" ? process.platform : undefined;
}

/** The per-user unit `keypool setup --keys` writes, if it is there. */
export function installedUnit(home: string, platform = platformHere()): string | undefined {
  if (!platform) return undefined;
  const path = join(defaultUnitDir(platform, true, home), unitFileName(platform, API_KEY_LB_SERVICE));
  return existsSync(path) ? path : undefined;
}

type ServiceStep = "install" | "start" | "stop";

/** The service manager's argv for each step, for the per-user service. */
export function serviceCommands(platform: ServicePlatform, unitPath: string): Record<ServiceStep, string[][]> {
  if (platform === "darwin") {
    const target = `gui/${process.getuid?.() ?? 0}`;
    return {
      // bootout first: bootstrap refuses a label that is already loaded (a second setup).
      install: [
        ["launchctl", "bootout", `${target}/${API_KEY_LB_SERVICE}`],
        ["launchctl", "bootstrap", target, unitPath],
      ],
      start: [["launchctl", "kickstart", `${target}/${API_KEY_LB_SERVICE}`]],
      // SIGTERM ends keypool with exit 0, which KeepAlive (SuccessfulExit false) does not restart.
      stop: [["launchctl", "kill", "SIGTERM", `${target}/${API_KEY_LB_SERVICE}`]],
    };
  }
  return {
    install: [
      ["systemctl", "--user", "daemon-reload"],
      ["systemctl", "--user", "enable", "--now", API_KEY_LB_SERVICE],
    ],
    start: [["systemctl", "--user", "start", API_KEY_LB_SERVICE]],
    stop: [["systemctl", "--user", "stop", API_KEY_LB_SERVICE]],
  };
}

export type RunResult = { ok: true } | { ok: false; command: string; why: string };

/** Runs argv lists in order; the first failure ends the run. `tolerate` lists indexes whose failure is expected. */
export async function runAll(commands: string[][], tolerate: number[] = []): Promise<RunResult> {
  for (const [index, argv] of commands.entries()) {
    let code: number;
    let stderr = "";
    try {
      const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
      [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    } catch {
      return { ok: false, command: argv.join(" "), why: `${argv[0]} is not installed` };
    }
    if (code !== 0 && !tolerate.includes(index)) {
      return { ok: false, command: argv.join(" "), why: stderr.trim().split("\n")[0] || `exit ${code}` };
    }
  }
  return { ok: true };
}

/** Where a foreground `keypool start` leaves its pid, so `keypool stop` can find it. */
export function pidFile(home: string): string {
  return join(apiKeyLbStateDir(home), "keypool.pid");
}

export function writePid(home: string): () => void {
  const path = pidFile(home);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, `${process.pid}\n`, { mode: 0o600 });
  return () => {
    // Only our own: a later start may have replaced it.
    if (readPid(home) === process.pid) rmSync(path, { force: true });
  };
}

/** The pid of a foreground keypool that is still alive, else undefined. */
export function readPid(home: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile(home), "utf8").trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
  } catch {
    return undefined;
  }
  // A stale file may name a pid the system has since given to another program: where the command line
  // can be read, it must be a `… start` (macOS has no /proc: the pid file is trusted there).
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    if (!argv.includes("start")) return undefined;
  } catch {}
  return pid;
}

/** `keypool status` for api-key-lb's users: what its status printed, from the gateway's /health. */
export function renderGatewayHealth(health: GatewayHealth, port: number): string {
  const lines = [
    `keypool on port ${port}`,
    `  Status: ${health.status}`,
    `  Target: ${health.target}`,
    `  Sessions: ${health.sessions}`,
    `  Uptime: ${(health.uptime_ms / 60_000).toFixed(1)} min`,
    "",
  ];
  for (const key of health.keys) {
    lines.push(`  Key #${key.id} (${key.key})`);
    const until = key.until ? ` until ${key.until}` : "";
    const counts = `Requests: ${key.requests}  Errors: ${key.errors}  Cache hits: ${key.cache_hits}`;
    lines.push(`    ${counts}  Status: ${key.status} (${key.state}${until})`);
  }
  return lines.join("\n");
}
