import type { Outcome } from "../../pool/key-state";
import type { ReleasePlan } from "../../pool/plan-release";
import { fullAt } from "../../pool/rate-limit-headers";
import { windowsOf } from "../key-columns";
import type { KeyEvent } from "../types";
import type { UsageEntry } from "../usage-entry";
import { type Fields, type KeyRow, Params, conditionFields } from "./_key-row";
import {
  type PairJson,
  type PairWrite,
  type SeenPair,
  eventCtes,
  pairJsonSql,
  pairUnchangedSql,
  pairWriteSql,
} from "./_pairs";
import type { PostgresSessions } from "./_sessions";
import type { PostgresUsageLedger } from "./_usage-ledger";

/** The key columns a planned release writes, all of them every time (one statement text per variant). */
export function releaseFields(row: KeyRow, plan: ReleasePlan, now: number): Fields {
  const windows = plan.windows ?? windowsOf(row);
  const budget = plan.budget;
  return {
    ...conditionFields(plan),
    in_flight: plan.inFlight,
    last_used: now,
    errors: row.errors + (plan.penalised ? 1 : 0),
    fail_class: plan.ladder.failClass,
    rung: plan.ladder.rung,
    fail_until: plan.ladder.failUntil,
    remaining_requests: budget?.requests ?? row.remaining_requests,
    remaining_tokens: budget?.tokens ?? row.remaining_tokens,
    remaining_reset_at: (budget && fullAt(budget)) ?? row.remaining_reset_at,
    minute_start: windows.minuteStart,
    minute_requests: windows.minuteRequests,
    minute_tokens: windows.minuteTokens,
    day_start: windows.dayStart,
    day_requests: windows.dayRequests,
    next_check_at:
      plan.reviveCheckAt === undefined ? row.next_check_at : Math.min(row.next_check_at, plan.reviveCheckAt),
  };
}

export interface GuardedRelease {
  lease: string;
  /** The row the plan was made from: the release is written only if the key's row is still this version. */
  row: KeyRow & { row_version: string };
  plan: ReleasePlan;
  outcome: Outcome;
  entry: UsageEntry;
  now: number;
  /** The pair of the release's model as the plan saw it: it is written only over that version. */
  seenPair?: SeenPair;
  /** The pair of the release's model, when the plan changes it. */
  pair?: PairWrite;
  /** The key's and the pair's transitions. */
  events: KeyEvent[];
}

/** What the guarded release answers: whether it gave the lease back, and the key's row as it is now. */
export interface GuardedAnswer extends KeyRow {
  given: boolean;
  /** Whether the lease existed when the statement began. */
  leased: boolean;
  row_version: string;
  /** With a seen pair: the pair now, as the statement's snapshot has it (the next attempt's guard checks it). */
  pair?: PairJson | null;
}

/**
 * A release in one statement, without a transaction around it: give the lease back, write the plan
 * (the key's and its pair's), count the usage, add to the session's totals and log the events — if the
 * key's row, and the pair's, are still the versions the plan was made from (see _pairs.ts). Otherwise
 * nothing is written and the statement returns the row as it is now, locked while the statement ran,
 * with the pair, for the store to plan again (optimistic concurrency: a plan is never written over
 * facts it did not see).
 */
export function guardedReleaseSql(
  release: GuardedRelease,
  ledger: PostgresUsageLedger,
  sessions: PostgresSessions,
): { text: string; values: unknown[] } {
  const { row, plan, outcome, now, seenPair } = release;
  const params = new Params();
  const pool = params.add(row.pool, "text");
  const id = params.add(row.id, "text");
  const lease = params.add(release.lease, "text");
  const pairGuard = seenPair ? ` AND ${pairUnchangedSql(params, pool, id, seenPair)}` : "";
  const sets = Object.entries(releaseFields(row, plan, now))
    .map(([column, value]) => `${column} = ${params.add(value)}`)
    .join(", ");
  const steps = [
    `cur AS (SELECT k.*, k.xmin::text AS row_version FROM keypool_keys k
       WHERE k.pool = ${pool} AND k.id = ${id} FOR UPDATE)`,
    `given AS (DELETE FROM keypool_leases WHERE lease = ${lease} AND pool = ${pool} AND key_id = ${id}
       AND EXISTS (SELECT 1 FROM cur WHERE row_version = ${params.add(row.row_version, "text")})${pairGuard}
       RETURNING lease)`,
    `updated AS (UPDATE keypool_keys k SET ${sets} FROM given WHERE k.pool = ${pool} AND k.id = ${id} RETURNING 1)`,
    `counted AS (${ledger.upsert("given", params, row.pool, row.id, release.entry, now)})`,
  ];
  if (outcome.session !== undefined)
    steps.push(`session AS (${sessions.addUsage("given", params, row.pool, outcome.session, outcome.usage)})`);
  if (release.pair) steps.push(`paired AS (${pairWriteSql(params, row.pool, row.id, release.pair, "given")})`);
  steps.push(...eventCtes(params, release.events, "given"));
  const pairNow = seenPair ? `, ${pairJsonSql(pool, id, params.add(seenPair.model, "text"))} AS pair` : "";
  const text = `WITH ${steps.join(",\n")}
SELECT EXISTS (SELECT 1 FROM given) AS given,
  EXISTS (SELECT 1 FROM keypool_leases WHERE lease = ${lease}) AS leased, cur.*${pairNow}
FROM cur`;
  return { text, values: params.values };
}
