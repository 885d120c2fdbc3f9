/**
 * poolctl — the Go broker + gateway keypool replaces — as a reference in the same run. Its binary sits in
 * `../shared/peers/` beside this repository (or KEYPOOL_POOLCTL names it); without it the benchmarks say so and
 * compare with bare Bun only.
 *
 * Configured as its README asks for benchmarks: `cooldown_sec: -1` (its `0` means "use the 30 s default") and
 * a command check that always passes. It keeps its pool in memory and writes `state_file` as JSON now and then.
 */
import { existsSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import type { ServerProcess } from "./_process";

export const POOLCTL_BINARY =
  process.env.KEYPOOL_POOLCTL || resolve(import.meta.dir, "..", "..", "shared", "peers", "poolctl");

const READY_TIMEOUT_MS = 10_000;

export function poolctlAvailable(): boolean {
  if (existsSync(POOLCTL_BINARY)) return true;
  console.log(`[skip] poolctl reference: no binary at ${POOLCTL_BINARY} (it ships in ../shared/peers/)`);
  return false;
}

/** A port free right now, for a program that cannot be told to pick its own and report it. */
function freePort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const { port } = probe;
  probe.stop(true);
  return port;
}

export interface PoolctlOptions {
  /** Tokens as `id,token` lines. */
  tokens: string[];
  /** With an upstream, poolctl runs as `proxy` and `url` is its gateway's; otherwise `serve` and its API's. */
  upstreamUrl?: string;
}

/** Starts poolctl in `dir` and resolves once it answers; the caller stops it with `stopServer`. */
export async function startPoolctl(dir: string, options: PoolctlOptions): Promise<ServerProcess> {
  writeFileSync(join(dir, "tokens.txt"), `${options.tokens.join("\n")}\n`);
  const apiPort = freePort();
  const gatewayPort = options.upstreamUrl ? freePort() : undefined;
  const yaml = [
    "tokens_file: tokens.txt",
    "rotation: lru",
    "cooldown_sec: -1",
    'check: { type: command, cmd: "true", success_output: "" }',
    `server: { addr: "127.0.0.1:${apiPort}" }`,
    "state_file: state.json",
    ...(options.upstreamUrl
      ? [
          `upstream: { enabled: true, listen: "127.0.0.1:${gatewayPort}", base_url: "${options.upstreamUrl}", cooldown_sec: -1 }`,
        ]
      : []),
    "",
  ].join("\n");
  const configPath = join(dir, "pool.yaml");
  writeFileSync(configPath, yaml);
  const command = options.upstreamUrl ? "proxy" : "serve";
  const proc = Bun.spawn([POOLCTL_BINARY, command, "-c", configPath], {
    cwd: dir,
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  await waitUntilAnswering(`${apiUrl}/status`, proc);
  const url = gatewayPort ? `http://127.0.0.1:${gatewayPort}` : apiUrl;
  return { name: `poolctl ${command}`, url, process: proc };
}

// A benchmark, not a test: polling a child that cannot signal readiness is the honest way to wait for it.
async function waitUntilAnswering(url: string, proc: Subprocess): Promise<void> {
  const deadline = performance.now() + READY_TIMEOUT_MS;
  while (performance.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`poolctl exited with ${proc.exitCode} before answering`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await Bun.sleep(20);
  }
  proc.kill("SIGKILL");
  throw new Error(`poolctl did not answer ${url} within ${READY_TIMEOUT_MS} ms`);
}
