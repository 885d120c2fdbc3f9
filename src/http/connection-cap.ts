import type { Server } from "bun";
import type { Logger } from "../log";

/** While a listener stays at its cap, the log says so again at most this often, with how many it refused. */
const LOG_EVERY_MS = 10_000;

/**
 * The cap on what one listener serves at once: Bun.serve has none, so without it a flood of requests
 * takes file handles and memory until every listener of the process stops answering. Bun does not
 * expose its connections, only its requests in flight, so those are what is counted: over HTTP/1.1
 * each is one busy connection. Idle keep-alive connections are bounded by the idle timeout instead,
 * and the first refusal of an episode also closes every idle one, handing their file handles back.
 *
 * Returns whether to refuse the request at hand; the caller answers 503 in its own error shape.
 */
export function connectionCap(
  listener: string,
  max: number,
  logger: Logger,
): (server: Server<unknown> | null | undefined) => boolean {
  let refused = 0;
  let loggedAt = Number.NEGATIVE_INFINITY;
  return function overConnectionCap(server) {
    // The request at hand is counted among those in flight.
    if (!server || server.pendingRequests <= max) return false;
    refused++;
    const now = performance.now();
    if (now - loggedAt >= LOG_EVERY_MS) {
      if (refused === 1) server.closeIdleConnections();
      logger.warn("connection cap reached: refusing requests with 503 until some finish (server.max_connections)", {
        listener,
        max_connections: max,
        refused,
      });
      loggedAt = now;
      refused = 0;
    }
    return true;
  };
}

/** Headers of a refusal at the cap: come back in a second, on a new connection. */
export const BUSY_HEADERS = { "retry-after": "1", connection: "close" };

/** The message a refused client gets. */
export function busyMessage(max: number): string {
  return `keypool is serving its most requests at once (server.max_connections = ${max}); retry shortly`;
}
