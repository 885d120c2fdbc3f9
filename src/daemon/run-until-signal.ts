import type { Logger } from "../log";
import { DomainError } from "../pool/errors";
import type { Daemon } from "./create-daemon";

export type StopSignal = "SIGINT" | "SIGTERM";

/** How a run ended: stopped cleanly, or cut short by a second signal (the store was not closed; WAL keeps it consistent). */
export type RunOutcome = "stopped" | "interrupted";

export interface StopSignals extends Disposable {
  /** The first SIGINT or SIGTERM. */
  readonly first: Promise<StopSignal>;
  /** The next one after that: the operator does not want to wait. */
  readonly second: Promise<StopSignal>;
}

/** Listens for SIGINT and SIGTERM until disposed; while it listens, neither signal ends the process by itself. */
export function stopSignals(): StopSignals {
  const received: Array<(signal: StopSignal) => void> = [];
  const first = new Promise<StopSignal>((resolve) => received.push(resolve));
  const second = new Promise<StopSignal>((resolve) => received.push(resolve));
  let count = 0;
  const onSignal = (signal: StopSignal) => received[count++]?.(signal);
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return {
    first,
    second,
    [Symbol.dispose]() {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    },
  };
}

/**
 * Starts the daemon and runs it until SIGINT or SIGTERM, then stops it in order: listeners drain
 * (up to shutdown_timeout_sec), the checker stops, the store is checkpointed and closed.
 * A second signal during that ends the wait at once. A failed start still closes the store.
 */
export async function runUntilSignal(
  daemon: Daemon,
  logger: Logger,
  options: { timeoutSec: number },
): Promise<RunOutcome> {
  using signals = stopSignals();
  try {
    await daemon.start();
  } catch (error) {
    await daemon.stop({ timeoutSec: 0 });
    throw error;
  }
  using _hangup = reloadOnHangup(daemon, logger);
  const signal = await signals.first;
  logger.info("shutting down: no new connections; in-flight requests and streams may finish", {
    signal,
    shutdown_timeout_sec: options.timeoutSec,
    hint: "send the signal again to exit at once",
  });
  const outcome = await Promise.race([
    daemon.stop(options).then(() => "stopped" as const),
    signals.second.then((again) => {
      logger.warn("second signal: exiting at once without waiting for in-flight requests", { signal: again });
      return "interrupted" as const;
    }),
  ]);
  if (outcome === "stopped") logger.info("keypool stopped", { signal });
  return outcome;
}

/** SIGHUP reloads the config, as daemons conventionally do; a rejected reload is already logged by the daemon. */
function reloadOnHangup(daemon: Daemon, logger: Logger): Disposable {
  const onHangup = () => {
    daemon.reload("SIGHUP").catch((error) => {
      if (!(error instanceof DomainError))
        logger.error("reload failed", { trigger: "SIGHUP", error: (error as Error).message });
    });
  };
  process.on("SIGHUP", onHangup);
  return { [Symbol.dispose]: () => void process.off("SIGHUP", onHangup) };
}
