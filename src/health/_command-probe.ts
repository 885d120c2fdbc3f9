import type { CommandCheckConfig } from "../config/types";
import { deadline } from "./_deadline";
import { probeEnvironment } from "./_probe-env";
import type { ProbeOptions, ProbeResult } from "./probe";
import { lastLine, scrubToken } from "./_token-text";

/** Enough stdout to find success_output in any sane answer; a probe that prints more is read and dropped. */
const MAX_STDOUT_BYTES = 1 << 20;
/** Only stderr's last line is ever shown. */
const MAX_STDERR_BYTES = 16 << 10;

/**
 * Runs the check command as argv (a shell line was made `/bin/sh -c SCRIPT` at load), with the token only in
 * KEYPOOL_TOKEN and an environment that holds none of keypool's own secrets. Nothing the command prints
 * reaches a reason before the token is masked in it.
 */
export async function probeCommand(check: CommandCheckConfig, token: string, opts: ProbeOptions): Promise<ProbeResult> {
  const started = performance.now();
  const result = (ok: boolean, reason: string): ProbeResult => ({
    ok,
    latencyMs: Math.round(performance.now() - started),
    reason: scrubToken(reason, token),
  });

  const argv = check.cmd;
  const program = argv[0];
  if (!program) return result(false, "check command is empty");
  const limit = deadline(check.timeoutSec, opts.signal);
  if (limit.signal.aborted) return result(false, "aborted");

  let proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  try {
    proc = Bun.spawn(argv, {
      env: probeEnvironment(check.env, token, opts.keyId),
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      // Its own process group, so that everything it started (a shell's pipeline, a background job) is
      // killed with it: none may outlive the probe, holding the token in its environment.
      detached: true,
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
      killGroup(proc);
      resolve(limit.why() ?? "timeout");
    };
    limit.signal.addEventListener("abort", onStop, { once: true });
  });
  // Output is awaited inside the race too: a grandchild that keeps stdout open must not outlive the deadline.
  const finished = Promise.all([
    proc.exited,
    readCapped(proc.stdout, MAX_STDOUT_BYTES, "head"),
    readCapped(proc.stderr, MAX_STDERR_BYTES, "tail"),
  ]);
  const outcome = await Promise.race([finished, stopped]);
  limit.signal.removeEventListener("abort", onStop);
  killGroup(proc);

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
  // Masked before it is cut: a cut could leave a piece of the token that no longer matches it whole.
  const detail = lastLine(scrubToken(lastLine(stderr, Number.POSITIVE_INFINITY), token));
  return result(false, detail ? `${status}: ${detail}` : status);
}

/** A stream's text, keeping its first (or last) `max` bytes and draining the rest. */
async function readCapped(stream: ReadableStream<Uint8Array>, max: number, keep: "head" | "tail"): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of stream) {
    if (keep === "head" && size >= max) continue;
    chunks.push(chunk);
    size += chunk.byteLength;
    while (keep === "tail" && size - chunks[0]!.byteLength >= max) size -= chunks.shift()!.byteLength;
  }
  const bytes = Buffer.concat(chunks);
  return (keep === "head" ? bytes.subarray(0, max) : bytes.subarray(Math.max(0, bytes.length - max))).toString("utf8");
}

function killGroup(proc: Bun.Subprocess): void {
  try {
    process.kill(-proc.pid, "SIGKILL");
  } catch {
    // ESRCH: the group is already gone.
  }
  proc.kill("SIGKILL");
}
