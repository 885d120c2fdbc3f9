import type { CheckConfig } from "../config/types";
import { probeCommand } from "./_command-probe";
import { probeHttp } from "./_http-probe";

/** What one probe of one key found. `reason` is short, human, and never contains the token. */
export interface ProbeResult {
  ok: boolean;
  /** HTTP status of the final response (HTTP checks only). */
  status?: number;
  latencyMs: number;
  reason: string;
  /** From a `Retry-After` header, in seconds from now. */
  retryAfterSec?: number;
}

export interface ProbeOptions {
  /** Outbound proxy URL for HTTP checks. */
  proxy?: string;
  /** Aborts the probe (and kills a command probe's process). */
  signal?: AbortSignal;
  /** The probed key's id, given to a command probe as KEYPOOL_KEY_ID. */
  keyId?: string;
}

/**
 * Probes one key once with the pool's check. Never throws for anything the upstream or the
 * command does: every outcome, including timeouts and unreachable hosts, is a ProbeResult.
 */
export async function probeKey(check: CheckConfig, token: string, opts: ProbeOptions = {}): Promise<ProbeResult> {
  return check.kind === "http" ? probeHttp(check, token, opts) : probeCommand(check, token, opts);
}
