import type { WebhookConfig } from "../config/types";
import type { Logger } from "../log";
import { type Alert, originOf, payloadOf } from "./alert";

export const DEFAULT_QUEUE_LIMIT = 1000;
/** Waits between attempts: three retries after the first try, then the alert is dropped. */
export const DEFAULT_RETRY_DELAYS_MS = [1_000, 5_000, 30_000] as const;
export const DEFAULT_TIMEOUT_MS = 10_000;

/** How one POST went; `error` is short and never holds the URL. */
export type PostAnswer = { ok: true; status: number } | { ok: false; status?: number; error: string };

/** Waits `ms`, or less when `signal` aborts. Injected so tests never wait on the wall clock. */
export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

export const timerSleep: Sleep = (ms, signal) =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });

/** POSTs one alert to one webhook. Never throws. */
export async function postAlert(
  hook: WebhookConfig,
  alert: Alert,
  opts: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<PostAnswer> {
  const timeout = AbortSignal.timeout(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  try {
    const response = await fetch(hook.url, {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": "keypool-alerts", ...hook.headers },
      body: JSON.stringify(payloadOf(alert, hook.format)),
      // A redirect would carry the alert (and any auth header) somewhere the operator did not name.
      redirect: "manual",
      signal,
    });
    await response.body?.cancel().catch(() => {});
    if (response.status >= 200 && response.status <= 299) return { ok: true, status: response.status };
    return { ok: false, status: response.status, error: `HTTP ${response.status}` };
  } catch (error) {
    if (timeout.aborted)
      return { ok: false, error: `no answer within ${Math.round((opts.timeoutMs ?? DEFAULT_TIMEOUT_MS) / 1000)}s` };
    if (opts.signal?.aborted) return { ok: false, error: "aborted" };
    // Bun's fetch errors name the URL in their message; the code alone says what happened.
    const code = (error as { code?: string }).code;
    return { ok: false, error: code ? `network error (${code})` : "network error" };
  }
}

/** Statuses worth another try; any other refusal will not change by asking again. */
function retryable(answer: PostAnswer): boolean {
  return answer.status === undefined || answer.status === 408 || answer.status === 429 || answer.status >= 500;
}

export interface WebhookSenderOptions {
  hook: WebhookConfig;
  logger: Logger;
  queueLimit?: number;
  retryDelaysMs?: readonly number[];
  timeoutMs?: number;
  sleep?: Sleep;
}

/**
 * One webhook's bounded queue and its single worker. `enqueue` never waits: when the queue is full
 * the oldest alert is dropped (and counted), so a slow or dead receiver costs a fixed amount of
 * memory and never holds up a take or a proxied request. One worker per webhook keeps a dead
 * receiver from delaying alerts to the others.
 */
export class WebhookSender {
  private readonly queue: Alert[] = [];
  private readonly limit: number;
  private readonly delays: readonly number[];
  private readonly sleep: Sleep;
  private readonly aborter = new AbortController();
  private readonly origin: string;
  private working: Promise<void> = Promise.resolve();
  private running = false;
  private droppedUnlogged = 0;
  /** Alerts dropped because the queue was full, since the start. */
  dropped = 0;
  /** Alerts given up on after every attempt failed, since the start. */
  failed = 0;
  delivered = 0;

  constructor(private readonly options: WebhookSenderOptions) {
    this.limit = options.queueLimit ?? DEFAULT_QUEUE_LIMIT;
    this.delays = options.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
    this.sleep = options.sleep ?? timerSleep;
    this.origin = originOf(options.hook.url);
  }

  /** Alerts waiting, not counting the one being delivered. */
  get queued(): number {
    return this.queue.length;
  }

  enqueue(alert: Alert): void {
    if (this.aborter.signal.aborted) return;
    if (this.queue.length >= this.limit) {
      this.queue.shift();
      this.dropped++;
      if (this.droppedUnlogged++ === 0) {
        this.options.logger.warn("alert queue full; dropping the oldest alerts", {
          webhook: this.origin,
          limit: this.limit,
        });
      }
    }
    this.queue.push(alert);
    if (!this.running) {
      this.running = true;
      this.working = this.work();
    }
  }

  /** Resolves when the queue is empty and nothing is being delivered. */
  async idle(): Promise<void> {
    while (this.running) await this.working;
  }

  /** Abandons the queue and any delivery or wait in progress. */
  async stop(): Promise<void> {
    this.aborter.abort();
    const left = this.queue.length;
    this.queue.length = 0;
    if (left > 0) this.options.logger.warn("alerts not delivered at shutdown", { webhook: this.origin, count: left });
    await this.working;
  }

  private async work(): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.aborter.signal.aborted) {
        if (this.droppedUnlogged > 1) {
          this.options.logger.warn("alerts dropped: queue was full", {
            webhook: this.origin,
            count: this.droppedUnlogged,
          });
        }
        this.droppedUnlogged = 0;
        await this.deliver(this.queue.shift()!);
      }
    } finally {
      // Cleared in the same turn as the empty-queue check, so an enqueue right after starts a new worker.
      this.running = false;
    }
  }

  private async deliver(alert: Alert): Promise<void> {
    const signal = this.aborter.signal;
    for (let attempt = 0; ; attempt++) {
      const answer = await postAlert(this.options.hook, alert, { timeoutMs: this.options.timeoutMs, signal });
      if (answer.ok) {
        this.delivered++;
        return;
      }
      if (signal.aborted) return;
      if (attempt >= this.delays.length || !retryable(answer)) {
        this.failed++;
        this.options.logger.warn("alert dropped: webhook did not accept it", {
          webhook: this.origin,
          event: alert.event,
          pool: alert.pool,
          key: alert.key,
          attempts: attempt + 1,
          error: answer.error,
        });
        return;
      }
      await this.sleep(this.delays[attempt]!, signal);
    }
  }
}
