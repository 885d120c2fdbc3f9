import type { ConditionPlan } from "../../pool/plan-check";
import type { PlannedEvent } from "../../pool/key-facts";
import type { KeyColumns } from "../key-columns";
import type { KeyEvent } from "../types";

/** A stored key; `models` is the key's restriction (see modelsColumnOf), kept by this store since schema step 4. */
export type KeyRow = KeyColumns<boolean> & { models: string | null };

/** A row as a locking read returns it, with its version: the row's xmin, which every write to it changes. */
export interface VersionedRow extends KeyRow {
  row_version: string;
}

export type Fields = Record<string, string | number | boolean | null>;

/** The columns a planned condition writes. */
export function conditionFields(plan: Pick<ConditionPlan, "condition" | "takeable" | "rank">): Fields {
  return {
    health: plan.condition.health,
    reason: plan.condition.reason,
    ready_at: plan.condition.readyAt,
    takeable: plan.takeable,
    rank: plan.rank,
  };
}

export function eventOf(pool: string, key: string, event: PlannedEvent, at: number): KeyEvent {
  return { at, pool, key, ...event };
}

/** Statement parameters, numbered in the order they are added. */
export class Params {
  readonly values: unknown[] = [];

  /** The placeholder of a new parameter, cast to `type` where PostgreSQL cannot infer it. */
  add(value: unknown, type?: string): string {
    this.values.push(value);
    return type ? `$${this.values.length}::${type}` : `$${this.values.length}`;
  }
}
