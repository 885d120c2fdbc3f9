import type { CheckConfig, KeySpec } from "../config/types";
import { probeKey } from "./probe";

export interface CheckTarget {
  pool: string;
  key: KeySpec;
  /** The pool's check; without one the key is reported `unchecked`, not probed. */
  check?: CheckConfig;
  proxy?: string;
}

/** `unchecked`: the pool has no check, so nothing was learned about the key — neither live nor failed. */
export type CheckState = "live" | "failed" | "unchecked";

export interface CheckRow {
  pool: string;
  id: string;
  state: CheckState;
  ok: boolean;
  status?: number;
  latencyMs: number;
  reason: string;
  retryAfterSec?: number;
}

export interface CheckKeysOptions {
  /** Most probes in flight at once (at least 1). */
  concurrency: number;
  signal?: AbortSignal;
}

/** Probes every target once, at most `concurrency` at a time; rows come back in input order. */
export async function checkKeys(targets: CheckTarget[], opts: CheckKeysOptions): Promise<CheckRow[]> {
  const rows = new Array<CheckRow>(targets.length);
  let next = 0;
  const worker = async () => {
    while (next < targets.length) {
      const index = next++;
      rows[index] = await checkOne(targets[index]!, opts.signal);
    }
  };
  const workers = Math.max(1, Math.min(Math.floor(opts.concurrency), targets.length));
  await Promise.all(Array.from({ length: workers }, worker));
  return rows;
}

async function checkOne({ pool, key, check, proxy }: CheckTarget, signal?: AbortSignal): Promise<CheckRow> {
  if (!check) return { pool, id: key.id, state: "unchecked", ok: false, latencyMs: 0, reason: "no check configured" };
  const probe = await probeKey(check, key.token, { proxy, signal, keyId: key.id });
  return { pool, id: key.id, state: probe.ok ? "live" : "failed", ...probe };
}
