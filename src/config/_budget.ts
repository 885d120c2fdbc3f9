import type { SpendCaps } from "../pool/budget";
import { MAX_BUDGET_USD, microsOfUsd } from "../pool/bounds";
import type { Section } from "./_fields";

/**
 * `budget: { day: 10, month: 200 }` — the pool's spend caps in USD per UTC day and month (either or
 * both). Counted in micro-dollars from then on; a cap is a positive, finite amount.
 */
export function readBudget(s: Section): SpendCaps | undefined {
  const b = s.section("budget");
  if (!b) return undefined;
  const rule = { min: 0, aboveMin: true, max: MAX_BUDGET_USD, unit: "USD" } as const;
  const day = b.number("day", rule);
  const month = b.number("month", rule);
  if (!b.has("day") && !b.has("month"))
    b.issues.add(b.path, "needs day or month (or both), in USD — e.g. budget: { day: 10, month: 200 }");
  b.done();
  const caps: SpendCaps = {};
  if (day !== undefined) caps.dayMicros = microsOfUsd(day);
  if (month !== undefined) caps.monthMicros = microsOfUsd(month);
  return caps.dayMicros === undefined && caps.monthMicros === undefined ? undefined : caps;
}
