/**
 * Load generators for both benchmarks: a closed loop for throughput, an open loop for latency.
 * What one request is, and what counts as a correct answer, is the caller's `Workload`.
 */
import { quantile } from "./_stats";

export interface Workload {
  /** The server under load, as messages name it. */
  baseUrl: string;
  /** One unit of work, body read to the end; throws unless the answer is whole and successful. */
  send(): Promise<void>;
}

/** Failed requests are counted, not fatal: the first one's message is enough to diagnose the rest. */
class Failures {
  count = 0;
  first: string | undefined;
  add(error: unknown): void {
    this.count++;
    this.first ??= (error as Error).message;
  }
  report(url: string): void {
    if (this.count > 0) console.error(`  ${this.count} failed requests against ${url}; first: ${this.first}`);
  }
}

export interface ClosedLoopOptions {
  workers: number;
  warmupMs: number;
  durationMs: number;
  /** The server's CPU time so far (ms), read as the measured window opens and closes. */
  cpuMs?: () => number | undefined;
}

export interface ClosedLoopResult {
  perSec: number;
  completed: number;
  errors: number;
  /** Latency of each request completed in the measured window, in ms, ascending. */
  latencies: number[];
  /** Server CPU time per completed request over the measured window, in µs, when cpuMs was given. */
  cpuUsPerRequest?: number;
}

/**
 * Each worker sends, waits for the whole answer and goes again at once, over keep-alive
 * connections. Only requests that complete inside the measured window count.
 */
export async function closedLoop(workload: Workload, options: ClosedLoopOptions): Promise<ClosedLoopResult> {
  const failures = new Failures();
  const latencies: number[] = [];
  let measuring = false;
  let stop = false;

  async function worker(): Promise<void> {
    while (!stop) {
      const started = performance.now();
      try {
        await workload.send();
        if (measuring && !stop) latencies.push(performance.now() - started);
      } catch (error) {
        failures.add(error);
      }
    }
  }

  const running = Array.from({ length: options.workers }, worker);
  await Bun.sleep(options.warmupMs);
  measuring = true;
  const cpu0 = options.cpuMs?.();
  const t0 = performance.now();
  await Bun.sleep(options.durationMs);
  const seconds = (performance.now() - t0) / 1000;
  const cpu1 = options.cpuMs?.();
  stop = true;
  await settle(Promise.all(running), workload.baseUrl);
  failures.report(workload.baseUrl);
  latencies.sort((a, b) => a - b);
  const completed = latencies.length;
  const cpuUsPerRequest =
    cpu0 !== undefined && cpu1 !== undefined && completed > 0 ? ((cpu1 - cpu0) * 1000) / completed : undefined;
  return { perSec: completed / seconds, completed, errors: failures.count, latencies, cpuUsPerRequest };
}

export interface OpenLoopOptions {
  ratePerSec: number;
  warmupMs: number;
  durationMs: number;
}

export interface OpenLoopResult {
  /** Latency of each measured request (send → last body byte), in ms, ascending. */
  latencies: number[];
  errors: number;
  /** 99th percentile of how late a send left against its schedule, in ms: the generator's own noise. */
  sendLagP99Ms: number;
}

/**
 * Sends at a fixed rate whatever the answers do: each send is scheduled by the clock, never by a
 * previous response, so a slow server cannot slow the offered load down (no coordinated omission).
 */
export async function openLoop(workload: Workload, options: OpenLoopOptions): Promise<OpenLoopResult> {
  const failures = new Failures();
  const intervalMs = 1000 / options.ratePerSec;
  const total = Math.round(((options.warmupMs + options.durationMs) / 1000) * options.ratePerSec);
  const measuredFrom = Math.round((options.warmupMs / 1000) * options.ratePerSec);
  const latencies: number[] = [];
  const lags: number[] = [];
  const inFlight: Promise<void>[] = [];

  const send = (index: number, lag: number) => {
    const started = performance.now();
    return workload.send().then(
      () => {
        if (index >= measuredFrom) {
          latencies.push(performance.now() - started);
          lags.push(lag);
        }
      },
      (error) => failures.add(error),
    );
  };

  const t0 = performance.now();
  let sent = 0;
  while (sent < total) {
    const now = performance.now();
    // Everything due by now leaves now; a late timer becomes a short burst, not a lower rate.
    const due = Math.min(total, Math.floor((now - t0) / intervalMs) + 1);
    for (; sent < due; sent++) inFlight.push(send(sent, now - (t0 + sent * intervalMs)));
    if (sent < total) await Bun.sleep(Math.max(0, t0 + sent * intervalMs - performance.now()));
  }
  await settle(Promise.all(inFlight), workload.baseUrl);
  failures.report(workload.baseUrl);
  latencies.sort((a, b) => a - b);
  lags.sort((a, b) => a - b);
  return { latencies, errors: failures.count, sendLagP99Ms: quantile(lags, 0.99) };
}

const SETTLE_MS = 10_000;

// A request the server never answers must fail the run, not hang it.
async function settle(requests: Promise<unknown>, baseUrl: string): Promise<void> {
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`requests to ${baseUrl} still hanging ${SETTLE_MS / 1000} s after the run ended`)),
      SETTLE_MS,
    );
  });
  try {
    await Promise.race([requests, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
