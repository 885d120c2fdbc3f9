import type { Subprocess } from "bun";

export interface SpawnedDaemon extends AsyncDisposable {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  url: string;
  /** Everything written to stderr so far (the log), including lines after startup. */
  log(): string;
  stdout(): string;
}

/**
 * Runs `keypool <args>` as its own OS process and resolves once it logs the URL it listens on.
 * The log line is the signal: no polling, no sleeps.
 */
export async function spawnDaemon(args: string[], env: Record<string, string> = {}): Promise<SpawnedDaemon> {
  const proc = Bun.spawn([process.execPath, "src/main.ts", ...args], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...env },
  });
  let stderr = "";
  let stdout = "";
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
      }
      reject(new Error(`keypool exited before listening (code ${await proc.exited}):\n${stderr}`));
    })();
  });
  return {
    proc,
    url,
    log: () => stderr,
    stdout: () => stdout,
    async [Symbol.asyncDispose]() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      await proc.exited;
    },
  };
}
