import type { Subprocess } from "bun";
import { join } from "node:path";

export interface SpawnedDaemon extends AsyncDisposable {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  url: string;
  /** Everything written to stderr so far (the log), including lines after startup. */
  log(): string;
  stdout(): string;
  /**
   * Resolves with the first log line matching `pattern` that comes after the `skip`-th match
   * (so a second reload can be told from the first); rejects if the process exits first.
   */
  waitForLog(pattern: RegExp, skip?: number): Promise<string>;
}

const MAIN = join(import.meta.dir, "../../src/main.ts");

export interface SpawnOptions {
  cwd?: string;
  /** Start from an environment of only PATH and HOME, so nothing of the test runner's leaks in. */
  cleanEnv?: boolean;
  /** What runs instead of `bun src/main.ts`, e.g. a compiled binary: `[process.env.KEYPOOL_BIN]`. */
  command?: string[];
}

/**
 * Runs `keypool <args>` as its own OS process and resolves once it logs the URL it listens on.
 * The log line is the signal: no polling, no sleeps.
 */
export async function spawnDaemon(
  args: string[],
  env: Record<string, string> = {},
  options: SpawnOptions = {},
): Promise<SpawnedDaemon> {
  const base = options.cleanEnv ? { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "" } : process.env;
  const proc = Bun.spawn([...(options.command ?? [process.execPath, MAIN]), ...args], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    cwd: options.cwd,
    env: { ...base, ...env },
  });
  let stderr = "";
  let stdout = "";
  const waiters = new Set<() => void>();
  let ended = false;
  void (async () => {
    for await (const chunk of proc.stdout) stdout += new TextDecoder().decode(chunk);
  })();
  const url = await new Promise<string>((resolve, reject) => {
    void (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of proc.stderr) {
        stderr += decoder.decode(chunk);
        const match = stderr.match(/"msg":"keypool API listening","url":"([^"]+)"/);
        if (match) resolve(match[1]!);
        for (const wake of waiters) wake();
      }
      ended = true;
      for (const wake of waiters) wake();
      reject(new Error(`keypool exited before listening (code ${await proc.exited}):\n${stderr}`));
    })();
  });
  return {
    proc,
    url,
    log: () => stderr,
    stdout: () => stdout,
    waitForLog(pattern, skip = 0) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const lines = stderr.split("\n").filter((line) => pattern.test(line));
          if (lines.length > skip) {
            waiters.delete(check);
            resolve(lines[skip]!);
          } else if (ended) {
            waiters.delete(check);
            reject(new Error(`keypool exited before logging ${pattern}:\n${stderr}`));
          }
        };
        waiters.add(check);
        check();
      });
    },
    async [Symbol.asyncDispose]() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      await proc.exited;
    },
  };
}
