import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

/**
 * The real poolctl (Go peer of seed 000), as CI lays it out: `../shared/peers/` beside the clone.
 * KEYPOOL_POOLCTL_BIN points elsewhere (a worktree whose parent has no shared/). Tests that need it
 * skip, saying so, when it is missing.
 */
export const POOLCTL_BIN = resolve(
  process.env.KEYPOOL_POOLCTL_BIN ?? join(import.meta.dir, "../../../shared/peers/poolctl"),
);
export const PEERS_DIR = resolve(POOLCTL_BIN, "..");
export const poolctlPresent = existsSync(POOLCTL_BIN);

if (!poolctlPresent) {
  console.warn(
    `skipping the side-by-side poolctl tests: no poolctl binary at ${POOLCTL_BIN} (set KEYPOOL_POOLCTL_BIN to run them)`,
  );
}

export interface Run {
  stdout: string;
  stderr: string;
  code: number;
}

export async function runPoolctl(args: string[], cwd: string): Promise<Run> {
  await using proc = Bun.spawn([POOLCTL_BIN, ...args], { cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { stdout, stderr, code };
}

/** A port nothing listens on right now: poolctl cannot be asked for port 0 and say which it got. */
export async function freePort(): Promise<number> {
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
  const port = server.port!;
  await server.stop(true);
  return port;
}

export interface PoolctlDaemon extends AsyncDisposable {
  url: string;
  /** Stops it with SIGTERM, so it writes its state file as it does on a normal shutdown. */
  stop(): Promise<void>;
}

/**
 * Runs `poolctl serve -c CONFIG` (the config listens on `port`) and resolves once it answers /status.
 * poolctl prints its "serving on" line just before it binds, and says nothing after: so that line is
 * awaited first, then a refused connection is retried, a bounded number of times, with no sleep.
 */
export async function startPoolctl(config: string, port: number, cwd: string, apiKey?: string): Promise<PoolctlDaemon> {
  const proc = Bun.spawn([POOLCTL_BIN, "serve", "-c", config], {
    cwd,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  let output = "";
  const decoder = new TextDecoder();
  const reader = (async () => {
    for await (const chunk of proc.stderr) output += decoder.decode(chunk);
  })();
  void (async () => {
    for await (const chunk of proc.stdout) output += decoder.decode(chunk);
  })();
  const url = `http://127.0.0.1:${port}`;
  const headers = apiKey ? { "x-api-key": apiKey } : undefined;
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
    await proc.exited;
    await reader;
  };
  for (let attempt = 0; ; attempt++) {
    try {
      await fetch(`${url}/status`, { headers });
      break;
    } catch (error) {
      if (proc.exitCode !== null || attempt >= 2000) {
        await stop();
        throw new Error(`poolctl did not start (${(error as Error).message}):\n${output}`);
      }
    }
  }
  return { url, stop, [Symbol.asyncDispose]: stop };
}
