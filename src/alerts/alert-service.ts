import type { AlertsConfig, PoolConfig, WebhookConfig } from "../config/types";
import { type Logger, silentLogger } from "../log";
import type { Clock } from "../pool/clock";
import type { PoolStore } from "../store/types";
import { type Alert, alertOfTransition, wants } from "./alert";
import { type Sleep, WebhookSender } from "./webhook-sender";

const DEFAULT_TICK_MS = 1000;
/** Events read per store query; a tick keeps reading until it has caught up. */
const EVENT_BATCH = 500;
/** A pool with min_live is counted when its keys change state, and at least this often (keys come back from cooling silently). */
const MIN_LIVE_RECOUNT_MS = 30_000;
/**
 * Keys that count towards min_live: in rotation, even if resting a moment (cooling after a take or a
 * rate limit). Quarantined, dead and disabled keys are out until something revives them.
 */
const IN_ROTATION = new Set(["live", "unknown", "cooling"]);

export interface AlertServiceOptions {
  store: PoolStore;
  clock: Clock;
  logger?: Logger;
  /** Read on every tick and every alert, so a reload takes effect at once. */
  config: () => { alerts?: AlertsConfig; pools: Record<string, PoolConfig> };
  tickMs?: number;
  /** Per webhook; the oldest alert is dropped past it. */
  queueLimit?: number;
  retryDelaysMs?: readonly number[];
  timeoutMs?: number;
  sleep?: Sleep;
}

/** Where the event log has been read up to: the last time seen, and how many events at exactly that time were handled. */
interface Cursor {
  at: number;
  seen: number;
}

/**
 * Turns key and pool trouble into webhook POSTs. Key transitions come from the store's event log,
 * polled by `tick()` (so transitions made by other processes on the same state file are heard too);
 * `poolExhausted` and `refreshFailed` are called by this process as they happen. Raising an alert
 * only queues it: nothing here ever waits on a webhook.
 */
export class AlertService {
  private readonly store: PoolStore;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly senders = new Map<string, WebhookSender>();
  /** When each (event, pool, key) was last sent, for repeat_sec. */
  private readonly lastSent = new Map<string, number>();
  private readonly lastCount = new Map<string, number>();
  private cursor: Cursor | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private ticking: Promise<void> | undefined;
  private stopped = false;
  /** Alerts held back by repeat_sec, since the start. */
  suppressed = 0;

  constructor(private readonly options: AlertServiceOptions) {
    this.store = options.store;
    this.clock = options.clock;
    this.logger = options.logger ?? silentLogger;
  }

  start(): void {
    if (this.timer || this.stopped) return;
    const run = () => {
      this.tick().catch((error) => this.logger.error("alert pass failed", { error: (error as Error).message }));
    };
    this.timer = setInterval(run, this.options.tickMs ?? DEFAULT_TICK_MS);
    run();
  }

  /** Reads new key transitions and counts min_live pools; overlapping calls share one pass. */
  tick(): Promise<void> {
    this.ticking ??= this.pass().finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  /** A take found no key (called on the request path: only queues). */
  poolExhausted(pool: string, reason: string, retryAfterMs?: number): void {
    const now = this.clock.now();
    const until = retryAfterMs === undefined ? null : now + retryAfterMs;
    this.raise({ event: "pool_exhausted", pool, key: null, state: null, reason, until, at: now });
  }

  refreshFailed(pool: string, key: string, reason: string): void {
    this.raise({ event: "refresh_failed", pool, key, state: "quarantined", reason, until: null, at: this.clock.now() });
  }

  /** Alerts waiting across every webhook (deliveries in progress not counted). */
  get queued(): number {
    let n = 0;
    for (const sender of this.senders.values()) n += sender.queued;
    return n;
  }

  /** Resolves once every queued alert has been delivered or given up on. */
  async idle(): Promise<void> {
    await Promise.all([...this.senders.values()].map((s) => s.idle()));
  }

  /** Stops polling and abandons undelivered alerts: shutdown must not wait on a webhook. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.ticking;
    await Promise.all([...this.senders.values()].map((s) => s.stop()));
  }

  private hooks(): WebhookConfig[] {
    return this.options.config().alerts?.webhooks ?? [];
  }

  private async pass(): Promise<void> {
    if (this.stopped) return;
    if (this.hooks().length === 0) {
      // Alerts off: forget the position, so turning them on later does not replay old history.
      this.cursor = undefined;
      return;
    }
    const changed = await this.readEvents();
    await this.countPools(changed);
    this.forgetOldSends();
  }

  /** Raises an alert for each new transition; returns the pools that had any. */
  private async readEvents(): Promise<Set<string>> {
    const pools = new Set<string>();
    if (!this.cursor) {
      // Only what happens from now on is news.
      const now = this.clock.now();
      const current = await this.store.events({ since: now - 1, limit: 10_000 });
      this.cursor = { at: now, seen: current.filter((e) => e.at === now).length };
      return pools;
    }
    for (let batch = 0; batch < 20; batch++) {
      const start: Cursor = this.cursor;
      // `since` is exclusive and times can repeat, so the last millisecond is read again and what was handled skipped.
      const events = await this.store.events({ since: start.at - 1, limit: EVENT_BATCH });
      let skip = start.seen;
      let at = start.at;
      let seen = start.seen;
      for (const e of events) {
        const old = e.at === start.at && skip > 0;
        if (old) skip--;
        else {
          pools.add(e.pool);
          const alert = alertOfTransition(e);
          if (alert) this.raise(alert);
        }
        if (e.at > at) [at, seen] = [e.at, 0];
        if (e.at === at && !old) seen++;
      }
      this.cursor = { at, seen };
      if (events.length < EVENT_BATCH) break;
    }
    return pools;
  }

  private async countPools(changed: Set<string>): Promise<void> {
    const now = this.clock.now();
    for (const pool of Object.values(this.options.config().pools)) {
      if (pool.minLive === undefined) continue;
      const last = this.lastCount.get(pool.name);
      if (!changed.has(pool.name) && last !== undefined && now - last < MIN_LIVE_RECOUNT_MS) continue;
      this.lastCount.set(pool.name, now);
      let keys: Awaited<ReturnType<PoolStore["status"]>>;
      try {
        keys = await this.store.status(pool.name);
      } catch {
        continue; // removed by a reload since the config was read
      }
      const live = keys.filter((k) => IN_ROTATION.has(k.state)).length;
      if (live >= pool.minLive) continue;
      const reason = `${live} of ${keys.length} keys in rotation (min_live ${pool.minLive})`;
      this.raise({
        event: "pool_below_min_live",
        pool: pool.name,
        key: null,
        state: null,
        reason,
        until: null,
        at: now,
        live,
        minLive: pool.minLive,
      });
    }
  }

  /** Queues `alert` for every webhook that wants it, unless the same one went out within repeat_sec. Never throws. */
  private raise(alert: Alert): void {
    try {
      const alerts = this.options.config().alerts;
      if (!alerts || alerts.webhooks.length === 0 || this.stopped) return;
      const id = `${alert.event}\u0000${alert.pool}\u0000${alert.key ?? ""}`;
      const now = this.clock.now();
      const last = this.lastSent.get(id);
      if (last !== undefined && now - last < alerts.repeatSec * 1000) {
        this.suppressed++;
        return;
      }
      this.lastSent.set(id, now);
      this.logger.info("alert", { event: alert.event, pool: alert.pool, key: alert.key, reason: alert.reason });
      for (const hook of alerts.webhooks) if (wants(hook, alert)) this.senderFor(hook).enqueue(alert);
    } catch (error) {
      this.logger.error("alert not queued", { event: alert.event, error: (error as Error).message });
    }
  }

  private senderFor(hook: WebhookConfig): WebhookSender {
    const id = JSON.stringify([hook.url, hook.format, hook.headers]);
    let sender = this.senders.get(id);
    if (!sender) {
      const { queueLimit, retryDelaysMs, timeoutMs, sleep } = this.options;
      sender = new WebhookSender({ hook, logger: this.logger, queueLimit, retryDelaysMs, timeoutMs, sleep });
      this.senders.set(id, sender);
    }
    return sender;
  }

  /** Keeps the repeat map from growing with keys that come and go. */
  private forgetOldSends(): void {
    const windowMs = (this.options.config().alerts?.repeatSec ?? 0) * 1000;
    const now = this.clock.now();
    for (const [id, at] of this.lastSent) if (now - at >= windowMs) this.lastSent.delete(id);
  }
}
