/**
 * Both ends of the contract between a benchmark and each server it measures, which runs in a process
 * of its own: the child prints its base URL as the first line of stdout, then serves until
 * SIGINT/SIGTERM or until stdin closes (the parent died without saying goodbye).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";

export interface ServerProcess {
  /** What the server is (e.g. "daemon"), for messages. */
  name: string;
  url: string;
  process: Subprocess<"pipe", "pipe", "inherit">;
}

const READY_TIMEOUT_MS = 20_000;

/**
 * Starts `bun [bunArgs] script [args]` and waits for the URL it prints. `bunArgs` go before the
 * script (e.g. --cpu-prof).
 */
export async function spawnServer(
  name: string,
  script: string,
  args: string[],
  bunArgs: string[] = [],
): Promise<ServerProcess> {
  const proc = Bun.spawn([process.execPath, ...bunArgs, script, ...args], {
    // Given explicitly: without it, a child gets the environment this process started with, not
    // variables set on process.env since (an A/B run that sets a variable per subject would compare nothing).
    env: { ...process.env },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  try {
    return { name, url: await firstLine(proc.stdout, READY_TIMEOUT_MS), process: proc };
  } catch (error) {
    proc.kill("SIGKILL");
    throw new Error(`the ${name} benchmark server did not start: ${(error as Error).message}`);
  }
}

async function firstLine(stream: ReadableStream<Uint8Array>, timeoutMs: number): Promise<string> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no URL on stdout within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    while (!text.includes("\n")) {
      const { value, done } = await Promise.race([reader.read(), timeout]);
      if (done) throw new Error("it exited before printing its URL");
      text += decoder.decode(value, { stream: true });
    }
    return text.slice(0, text.indexOf("\n")).trim();
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
}

/**
 * Asks a server to stop (SIGTERM) and waits for it; a stuck one is killed after a grace period.
 * Stopping gracefully is what lets a --cpu-prof profile get written.
 */
export async function stopServer(server: ServerProcess): Promise<void> {
  server.process.kill("SIGTERM");
  const killer = setTimeout(() => server.process.kill("SIGKILL"), 5_000);
  await server.process.exited;
  clearTimeout(killer);
}

/** Bun flags that write a CPU profile (and its Markdown summary) into `dir` when the process exits; none without a dir. */
export function cpuProfileArgs(dir: string | undefined): string[] {
  if (!dir) return [];
  mkdirSync(resolve(dir), { recursive: true });
  return ["--cpu-prof", "--cpu-prof-md", `--cpu-prof-dir=${resolve(dir)}`];
}

/** Linux reports process CPU time in clock ticks of 1/100 s (USER_HZ) on every mainstream kernel. */
const TICKS_PER_SEC = 100;

/**
 * CPU time (user + system, ms) the server process has used so far, from /proc; undefined where
 * there is no /proc. CPU per request is the figure a noisy shared machine disturbs least.
 */
export function cpuMsOf(server: ServerProcess): number | undefined {
  try {
    const stat = readFileSync(`/proc/${server.process.pid}/stat`, "utf8");
    // Fields after the ")" closing the command name; utime and stime are the 14th and 15th overall.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SEC;
  } catch {
    return undefined;
  }
}

/** The process's resident memory in MB, from /proc (Linux only). */
export function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

/** A server inside a child process, as the child sees it. */
export interface ServedTarget {
  url: string;
  stop(): Promise<void>;
}

/**
 * The child's side of the contract: announces `target`'s URL, serves until told to stop or orphaned,
 * then stops it, runs `cleanUp` and exits.
 */
export async function serveUntilStopped(target: ServedTarget, cleanUp: () => void): Promise<void> {
  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    try {
      await target.stop();
    } finally {
      cleanUp();
      process.exit(0);
    }
  };
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);

  process.stdout.write(`${target.url}\n`);
  // EOF on stdin means the parent is gone; don't outlive it.
  for await (const _ of Bun.stdin.stream()) {
  }
  await shutdown();
}

/**
 * A child's state dir: the one it was given; or, when it needs one and got none (run by hand), a temp
 * dir of its own that `remove` deletes.
 */
export function childStateDir(
  given: string | undefined,
  needed: boolean,
  tempPrefix: string,
): { path: string; remove(): void } {
  if (given || !needed) return { path: given ?? "", remove: () => {} };
  const path = mkdtempSync(join(tmpdir(), tempPrefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}
