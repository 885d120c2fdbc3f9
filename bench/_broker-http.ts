import type { Subprocess } from "bun";

export type TargetKind = "daemon" | "bare" | "daemon-memory" | "api-stub";

export interface RunningTarget {
  kind: TargetKind;
  url: string;
  process: Subprocess<"pipe", "pipe", "inherit">;
}

const SERVER_SCRIPT = new URL("./_server.ts", import.meta.url).pathname;
const READY_TIMEOUT_MS = 20_000;

/**
 * Starts `bench/_server.ts` in its own process and waits for the URL it prints.
 * `extraBunArgs` goes before the script (e.g. --cpu-prof).
 */
export async function spawnTarget(kind: TargetKind, stateDir: string, extraBunArgs: string[] = []): Promise<RunningTarget> {
  const proc = Bun.spawn([process.execPath, ...extraBunArgs, SERVER_SCRIPT, kind, stateDir], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const url = await firstLine(proc.stdout, READY_TIMEOUT_MS).catch((error: Error) => {
    proc.kill();
    throw new Error(`the ${kind} benchmark server did not start: ${error.message}`);
  });
  return { kind, url, process: proc };
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

/** Asks a target to stop (SIGTERM) and waits for it; a stuck one is killed after a grace period. */
export async function stopTarget(target: RunningTarget): Promise<void> {
  target.process.kill("SIGTERM");
  const killer = setTimeout(() => target.process.kill("SIGKILL"), 5_000);
  await target.process.exited;
  clearTimeout(killer);
}

export interface LoadOptions {
  workers: number;
  warmupMs: number;
  durationMs: number;
}

export interface LoadResult {
  pairsPerSec: number;
  pairs: number;
  errors: number;
  /** Median and 99th-percentile latency of one take+release pair, in ms. */
  p50Ms: number;
  p99Ms: number;
}

/**
 * Closed loop: each worker takes, releases, and goes again at once, over keep-alive connections.
 * Only pairs that complete inside the measured window count.
 */
export async function runLoad(baseUrl: string, options: LoadOptions): Promise<LoadResult> {
  const takeUrl = `${baseUrl}/take`;
  const releaseUrl = `${baseUrl}/release`;
  const headers = { "content-type": "application/json" };
  let measuring = false;
  let stop = false;
  let errors = 0;
  const latencies: number[] = [];
  let firstError: string | undefined;

  const fail = (what: string) => {
    errors++;
    firstError ??= what;
  };

  async function worker(): Promise<void> {
    while (!stop) {
      const started = performance.now();
      try {
        if (await pair()) {
          if (measuring && !stop) latencies.push(performance.now() - started);
        }
      } catch (error) {
        fail(`request threw: ${(error as Error).message}`);
      }
    }
  }

  async function pair(): Promise<boolean> {
    const took = await fetch(takeUrl);
    const lease = (await took.json()) as { lease?: string };
    if (!took.ok || !lease.lease) {
      fail(`GET /take → ${took.status} ${JSON.stringify(lease)}`);
      return false;
    }
    const released = await fetch(releaseUrl, { method: "POST", headers, body: JSON.stringify({ lease: lease.lease, ok: true }) });
    const result = await released.json();
    if (!released.ok) {
      fail(`POST /release → ${released.status} ${JSON.stringify(result)}`);
      return false;
    }
    return true;
  }

  const running = Array.from({ length: options.workers }, worker);
  await Bun.sleep(options.warmupMs);
  measuring = true;
  const t0 = performance.now();
  await Bun.sleep(options.durationMs);
  const seconds = (performance.now() - t0) / 1000;
  stop = true;
  await settleWithin(Promise.all(running), 10_000, `requests to ${baseUrl} still hanging 10 s after the run ended`);

  if (errors > 0) console.error(`  ${errors} failed requests against ${baseUrl}; first: ${firstError}`);
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return { pairsPerSec: latencies.length / seconds, pairs: latencies.length, errors, p50Ms: at(0.5), p99Ms: at(0.99) };
}

async function settleWithin(work: Promise<unknown>, ms: number, message: string): Promise<void> {
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
