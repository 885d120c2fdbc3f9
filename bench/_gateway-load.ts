/** Load generators for the gateway benchmark: a closed loop for throughput, an open loop for latency. */

export type Mode = "json" | "sse";

const PATH = "/v1/chat/completions";

function requestBody(mode: Mode): string {
  return JSON.stringify({
    model: "gpt-bench",
    messages: [{ role: "user", content: "Say hello in one short sentence." }],
    stream: mode === "sse",
  });
}

/** One chat completion, body read to the end; throws unless it is a whole, successful answer. */
async function complete(url: string, body: string, mode: Mode): Promise<void> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer client-key-ignored" },
    body,
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${response.status} ${text.slice(0, 200)}`);
  const whole = mode === "sse" ? text.endsWith("data: [DONE]\n\n") : text.endsWith("}");
  if (!whole) throw new Error(`incomplete ${mode} body (${text.length} bytes): …${text.slice(-80)}`);
}

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

/** Value at quantile q (0..1) of an ascending array. */
export function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

export interface ClosedLoopOptions {
  mode: Mode;
  workers: number;
  warmupMs: number;
  durationMs: number;
  /** The server's CPU time so far (ms), read as the measured window opens and closes. */
  cpuMs?: () => number | undefined;
}

export interface ClosedLoopResult {
  rps: number;
  requests: number;
  errors: number;
  /** Server CPU time per completed request over the measured window, in µs, when cpuMs was given. */
  cpuUsPerRequest?: number;
}

/**
 * Each worker sends a request, reads the whole answer and goes again at once, over keep-alive
 * connections. Only requests that complete inside the measured window count.
 */
export async function closedLoop(baseUrl: string, options: ClosedLoopOptions): Promise<ClosedLoopResult> {
  const url = baseUrl + PATH;
  const body = requestBody(options.mode);
  const failures = new Failures();
  let measuring = false;
  let stop = false;
  let completed = 0;

  async function worker(): Promise<void> {
    while (!stop) {
      try {
        await complete(url, body, options.mode);
        if (measuring && !stop) completed++;
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
  await settleWithin(Promise.all(running), 10_000, `requests to ${baseUrl} still hanging 10 s after the run ended`);
  failures.report(baseUrl);
  const cpuUsPerRequest = cpu0 !== undefined && cpu1 !== undefined && completed > 0 ? ((cpu1 - cpu0) * 1000) / completed : undefined;
  return { rps: completed / seconds, requests: completed, errors: failures.count, cpuUsPerRequest };
}

export interface OpenLoopOptions {
  mode: Mode;
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
export async function openLoop(baseUrl: string, options: OpenLoopOptions): Promise<OpenLoopResult> {
  const url = baseUrl + PATH;
  const body = requestBody(options.mode);
  const failures = new Failures();
  const intervalMs = 1000 / options.ratePerSec;
  const total = Math.round(((options.warmupMs + options.durationMs) / 1000) * options.ratePerSec);
  const measuredFrom = Math.round((options.warmupMs / 1000) * options.ratePerSec);
  const latencies: number[] = [];
  const lags: number[] = [];
  const inFlight: Promise<void>[] = [];

  const send = (index: number, lag: number) => {
    const started = performance.now();
    return complete(url, body, options.mode).then(
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
  await settleWithin(Promise.all(inFlight), 10_000, `requests to ${baseUrl} still hanging 10 s after the run ended`);
  failures.report(baseUrl);
  latencies.sort((a, b) => a - b);
  lags.sort((a, b) => a - b);
  return { latencies, errors: failures.count, sendLagP99Ms: quantile(lags, 0.99) };
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
