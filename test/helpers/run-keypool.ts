import { join } from "node:path";

const MAIN = join(import.meta.dir, "../../src/main.ts");

export interface KeypoolRun {
  stdout: string;
  stderr: string;
  code: number;
}

/**
 * Runs keypool to completion and collects its output: from source by default, or `command`
 * (a compiled binary) instead of `bun src/main.ts`.
 */
export async function runKeypool(
  args: string[],
  options: { command?: string[]; cwd?: string; env?: Record<string, string> } = {},
): Promise<KeypoolRun> {
  await using proc = Bun.spawn([...(options.command ?? [process.execPath, MAIN]), ...args], {
    cwd: options.cwd,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, NO_COLOR: "1", ...options.env },
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { stdout, stderr, code };
}
