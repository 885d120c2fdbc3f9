import type { Logger } from "../log";
import type { DomainError } from "../pool/errors";
import type { PoolStore } from "../store/types";

const DEFAULT_TICK_MS = 1000;

export interface StoreGuardOptions {
  store: PoolStore;
  logger: Logger;
  /** How often `start()` looks (default 1 s): how long another process on the path may diverge unseen. */
  tickMs?: number;
}

/**
 * Looks at what the store stands on, off the request path. A state file deleted or replaced under
 * the daemon is logged once and answered by /health with a 503 (the store itself refuses takes); a
 * risk such as a state file other users can read is warned about once, and again if it comes back.
 * `start()` runs `tick()` on a timer; tests call `tick()` themselves.
 */
export class StoreGuard {
  private readonly store: PoolStore;
  private readonly logger: Logger;
  private readonly tickMs: number;
  private timer: ReturnType<typeof setInterval> | undefined;
  private lostNow: DomainError | undefined;
  private warned = new Set<string>();

  constructor(options: StoreGuardOptions) {
    this.store = options.store;
    this.logger = options.logger;
    this.tickMs = options.tickMs ?? DEFAULT_TICK_MS;
  }

  /** Why the store must not be trusted, as of the last tick; undefined while it may. */
  get lost(): DomainError | undefined {
    return this.lostNow;
  }

  start(): void {
    if (this.timer) return;
    this.tick();
    this.timer = setInterval(() => this.tick(), this.tickMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  tick(): void {
    const check = this.store.checkStorage();
    if (check.lost && !this.lostNow) {
      const fields = { reason: check.lost.message, state_file: check.where };
      this.logger.error("state lost: takes are refused and /health answers 503", fields);
    }
    if (!check.lost && this.lostNow) this.logger.info("the state file is back in place; takes resume");
    this.lostNow = check.lost;
    for (const warning of check.warnings) if (!this.warned.has(warning)) this.logger.warn(warning);
    this.warned = new Set(check.warnings);
  }
}
