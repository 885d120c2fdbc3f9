/**
 * Warms a gateway benchmark subject to its steady state before anything is measured.
 *
 * A Bun process keeps compiling its hot code on `JITWorker` threads for seconds after the load starts:
 * measured after a fixed 300–500 ms warm-up, the gateway spent about 66 µs per request on those
 * threads, against about 1 µs once they fell silent (10 s in). That is the cost of starting, not of a
 * proxy that runs for days, and it weighs on the gateway far more than on the bare proxy, which has
 * little code to compile. So each subject is loaded in one-second windows until its JIT threads use
 * almost no CPU; a subject without them (poolctl, a Go binary) is warm after the first windows.
 */
import { readFileSync, readdirSync } from "node:fs";
import { type Workload, closedLoop } from "./_load";
import { type ServerProcess, cpuMsOf } from "./_process";

/** Warm once the JIT threads' share of the process's CPU over a window falls below this. */
const JIT_SHARE_DONE = 0.02;
const WINDOW_MS = 1_000;
const MIN_WINDOWS = 2;

export interface WarmUpResult {
  seconds: number;
  /** The JIT threads' share of the process CPU in the last window; undefined without /proc. */
  jitShare?: number;
}

/** Loads `server` with `workload` until it is warm or `maxSeconds` have passed. */
export async function warmUp(
  server: ServerProcess,
  workload: Workload,
  options: { workers: number; maxSeconds: number },
): Promise<WarmUpResult> {
  const pid = server.process.pid;
  let jitShare: number | undefined;
  let windows = 0;
  while (windows < Math.max(MIN_WINDOWS, options.maxSeconds * (1000 / WINDOW_MS))) {
    const cpu0 = cpuMsOf(server);
    const jit0 = jitCpuMs(pid);
    await closedLoop(workload, { workers: options.workers, warmupMs: 0, durationMs: WINDOW_MS });
    windows++;
    const cpu = (cpuMsOf(server) ?? Number.NaN) - (cpu0 ?? Number.NaN);
    const jit = (jitCpuMs(pid) ?? Number.NaN) - (jit0 ?? Number.NaN);
    jitShare = cpu > 0 && Number.isFinite(jit) ? jit / cpu : undefined;
    // Without /proc there is nothing to watch: the fixed minimum has to do.
    if (windows >= MIN_WINDOWS && (jitShare === undefined || jitShare < JIT_SHARE_DONE)) break;
  }
  return { seconds: (windows * WINDOW_MS) / 1000, jitShare };
}

/** CPU ms used so far by the process's JIT compiler threads (Linux); undefined where there is no /proc. */
function jitCpuMs(pid: number): number | undefined {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return undefined;
  }
  let ticks = 0;
  for (const task of tasks) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${task}/stat`, "utf8");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      if (!name.startsWith("JIT")) continue;
      // utime and stime, as in cpuMsOf: the 14th and 15th fields, 12th and 13th after the name.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return ticks * 10;
}
