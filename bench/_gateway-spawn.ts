import { readFileSync } from "node:fs";
import type { Subprocess } from "bun";

export type ServerKind = "upstream" | "bare" | "gateway";

export interface ServerProcess {
  kind: ServerKind;
  url: string;
  process: Subprocess<"pipe", "pipe", "inherit">;
}

const SERVER_SCRIPT = new URL("./_gateway-server.ts", import.meta.url).pathname;
const READY_TIMEOUT_MS = 20_000;

/**
 * Starts `bench/_gateway-server.ts KIND ...args` and waits for the URL it prints.
 * `bunArgs` goes before the script (e.g. --cpu-prof).
 */
export async function spawnServer(kind: ServerKind, args: string[] = [], bunArgs: string[] = []): Promise<ServerProcess> {
  const proc = Bun.spawn([process.execPath, ...bunArgs, SERVER_SCRIPT, kind, ...args], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  try {
    return { kind, url: await firstLine(proc.stdout, READY_TIMEOUT_MS), process: proc };
  } catch (error) {
    proc.kill("SIGKILL");
    throw new Error(`the ${kind} benchmark server did not start: ${(error as Error).message}`);
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

/** Asks a server to stop (SIGTERM) and waits; a stuck one is killed after a grace period. */
export async function stopServer(server: ServerProcess): Promise<void> {
  server.process.kill("SIGTERM");
  const killer = setTimeout(() => server.process.kill("SIGKILL"), 5_000);
  await server.process.exited;
  clearTimeout(killer);
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
