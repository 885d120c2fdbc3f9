import type { CommandCheckConfig } from "../config/types";
import { readCapped } from "../capped-body";
import { deadline } from "./_deadline";

/** How much of a check command's stdout (for success_output) and stderr (for the reason) is read. */
export const MAX_COMMAND_OUTPUT_BYTES = 1024 * 1024;
const decoder = new TextDecoder();
import type { ProbeOptions, ProbeResult } from "./probe";
import { lastLine, scrubToken, substituteToken } from "./_token-text";

/**
 * Runs the check command with the token as (part of) argv elements and in KEYPOOL_TOKEN —
 * never through a shell, so no token can be parsed as shell syntax.
 */
export async function probeCommand(check: CommandCheckConfig, token: string, opts: ProbeOptions): Promise<ProbeResult> {
  const started = performance.now();
  const result = (ok: boolean, reason: string): ProbeResult => ({
    ok,
    latencyMs: Math.round(performance.now() - started),
    reason: scrubToken(reason, token),
  });

  const argv = check.cmd.map((arg) => substituteToken(arg, token));
  const program = argv[0];
  if (!program) return result(false, "check command is empty");
  const limit = deadline(check.timeoutSec, opts.signal);
  if (limit.signal.aborted) return result(false, "aborted");

  let proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  try {
    proc = Bun.spawn(argv, {
      env: { ...process.env, KEYPOOL_TOKEN: token },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ENOENT") return result(false, `command not found: ${program}`);
    if (code === "EACCES") return result(false, `command not executable: ${program}`);
    return result(false, `could not run ${program}: ${(error as Error).message}`);
  }

  let onStop = () => {};
  const stopped = new Promise<"timeout" | "aborted">((resolve) => {
    onStop = () => {
      proc.kill("SIGKILL");
      resolve(limit.why() ?? "timeout");
    };
    limit.signal.addEventListener("abort", onStop, { once: true });
  });
  // Output is awaited inside the race too: a grandchild that keeps stdout open must not outlive the deadline.
  // Read to a cap: a command that prints without end must not fill the daemon's memory.
  const output = async (stream: ReadableStream<Uint8Array>) => decoder.decode((await readCapped(stream, MAX_COMMAND_OUTPUT_BYTES)).bytes);
  const finished = Promise.all([proc.exited, output(proc.stdout), output(proc.stderr)]);
  const outcome = await Promise.race([finished, stopped]);
  limit.signal.removeEventListener("abort", onStop);

  if (typeof outcome === "string") {
    await proc.exited; // SIGKILL is prompt; waiting means no process outlives the probe.
    return result(false, outcome === "timeout" ? limit.timeoutReason : "aborted");
  }
  const [exitCode, stdout, stderr] = outcome;
  if (check.successOutput !== undefined) {
    return stdout.includes(check.successOutput)
      ? result(true, "ok")
      : result(false, `output did not contain ${JSON.stringify(check.successOutput)}`);
  }
  if (exitCode === 0) return result(true, "ok");
  const status = proc.signalCode ? `killed by ${proc.signalCode}` : `exit ${exitCode}`;
  const detail = lastLine(stderr);
  return result(false, detail ? `${status}: ${detail}` : status);
}
