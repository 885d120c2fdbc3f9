/**
 * Spend caps: a key or a pool stops before it spends more than its budget in a UTC day or a UTC
 * month. Spend is what the releases' usage cost at the configured prices (see pricing.ts), counted
 * in micro-dollars in two windows that start over at 00:00 UTC and on the 1st of the month, 00:00 UTC.
 * Pure: the stores keep the counters; this module says what a cost does to them and what they mean.
 */
import { formatDuration } from "./key-state";

/** A budget in micro-dollars per window; an absent window has no cap. */
export interface SpendCaps {
  dayMicros?: number;
  monthMicros?: number;
}

/** What a key or a pool spent in the current windows (a window that has passed counts as empty). */
export interface SpendWindows {
  dayStart: number;
  dayMicros: number;
  monthStart: number;
  monthMicros: number;
  /** Requests whose cost could not be priced (no price for the model, or no usage reported), per window. */
  dayUnpriced: number;
  monthUnpriced: number;
}

export const EMPTY_SPEND: SpendWindows = {
  dayStart: 0,
  dayMicros: 0,
  monthStart: 0,
  monthMicros: 0,
  dayUnpriced: 0,
  monthUnpriced: 0,
};

export type BudgetWindow = "day" | "month";
export type BudgetLevel = "warning" | "exhausted";

/** A warning goes out once spend reaches this share of a cap. */
export const WARNING_SHARE = 0.8;

/** 00:00 UTC of the day `at` falls in. */
export function utcDayStart(at: number): number {
  return at - (((at % DAY_MS) + DAY_MS) % DAY_MS);
}

/** 00:00 UTC on the 1st of the month `at` falls in. */
export function utcMonthStart(at: number): number {
  const d = new Date(at);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

/** When the window that holds `at` ends: the next 00:00 UTC, or the 1st of next month. */
export function windowResetAt(window: BudgetWindow, at: number): number {
  if (window === "day") return utcDayStart(at) + DAY_MS;
  const d = new Date(at);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

const DAY_MS = 86_400_000;

/** The counters as of `now`: a window that has ended starts over empty. */
export function currentSpend(spend: SpendWindows, now: number): SpendWindows {
  const dayStart = utcDayStart(now);
  const monthStart = utcMonthStart(now);
  const sameDay = spend.dayStart === dayStart;
  const sameMonth = spend.monthStart === monthStart;
  if (sameDay && sameMonth) return spend;
  return {
    dayStart,
    dayMicros: sameDay ? spend.dayMicros : 0,
    dayUnpriced: sameDay ? spend.dayUnpriced : 0,
    monthStart,
    monthMicros: sameMonth ? spend.monthMicros : 0,
    monthUnpriced: sameMonth ? spend.monthUnpriced : 0,
  };
}

/** A request's cost added to the counters; `unpriced` when its cost is unknown (counted apart, never as $0). */
export function addSpend(spend: SpendWindows, micros: number, unpriced: boolean, now: number): SpendWindows {
  const current = currentSpend(spend, now);
  const cost = Number.isFinite(micros) && micros > 0 ? micros : 0;
  return {
    ...current,
    dayMicros: current.dayMicros + cost,
    monthMicros: current.monthMicros + cost,
    dayUnpriced: current.dayUnpriced + (unpriced ? 1 : 0),
    monthUnpriced: current.monthUnpriced + (unpriced ? 1 : 0),
  };
}

/** Whether the caps leave nothing to spend now; `until` is when the spent window (the later one, if both) resets. */
export interface BudgetRest {
  until: number;
  reason: string;
}

export function budgetRest(spend: SpendWindows, caps: SpendCaps | undefined, now: number): BudgetRest | undefined {
  if (!caps) return undefined;
  const current = currentSpend(spend, now);
  let rest: BudgetRest | undefined;
  for (const window of WINDOWS) {
    const cap = capOf(caps, window);
    const spent = spentIn(current, window);
    if (cap === undefined || spent < cap) continue;
    const until = windowResetAt(window, now);
    if (!rest || until > rest.until)
      rest = { until, reason: `${REST_PREFIX} ${usd(spent)} of ${usd(cap)} ${WORDS[window]}` };
  }
  return rest;
}

const REST_PREFIX = "budget:";

/** Whether a key's rest is a spent cap's (its reason is budgetRest's). */
export function isBudgetRest(reason: string | null): boolean {
  return reason?.startsWith(REST_PREFIX) ?? false;
}

/** A threshold a cost crossed: 80% (warning) or 100% (exhausted) of one window's cap. */
export interface BudgetCrossing {
  window: BudgetWindow;
  level: BudgetLevel;
  spentMicros: number;
  capMicros: number;
  /** When the window resets (the alert says so, and a spent cap is over then). */
  resetAt: number;
}

/**
 * The thresholds the counters crossed from `before` to `after`: each happens at most once per window,
 * since spend only grows within a window, so the alert a crossing raises goes out once per window.
 */
export function budgetCrossings(
  before: SpendWindows,
  after: SpendWindows,
  caps: SpendCaps | undefined,
  now: number,
): BudgetCrossing[] {
  if (!caps) return [];
  const was = currentSpend(before, now);
  const crossings: BudgetCrossing[] = [];
  for (const window of WINDOWS) {
    const cap = capOf(caps, window);
    if (cap === undefined) continue;
    const [from, to] = [spentIn(was, window), spentIn(after, window)];
    const resetAt = windowResetAt(window, now);
    for (const [level, share] of LEVELS) {
      const line = cap * share;
      if (from < line && to >= line) crossings.push({ window, level, spentMicros: to, capMicros: cap, resetAt });
    }
  }
  return crossings;
}

/** How a crossing reads in an alert and in the event log. */
export function describeCrossing(c: BudgetCrossing, now: number): string {
  const share = Math.floor((c.spentMicros / c.capMicros) * 100);
  const state = c.level === "exhausted" ? `spent; resets in ${formatDuration(c.resetAt - now)}` : `${share}% spent`;
  return `budget: ${usd(c.spentMicros)} of ${usd(c.capMicros)} ${WORDS[c.window]} (${state})`;
}

/**
 * Micro-dollars as dollars, rounded up so a spent cap never reads as below it: cents from $1 on
 * ($10.0001 → $10.01), else down to the micro-dollar ($0.0012), since small caps are usual in tests and trials.
 */
export function usd(micros: number): string {
  const whole = Math.ceil(Math.max(0, micros));
  if (whole >= 1_000_000) return `$${(Math.ceil(whole / 10_000) / 100).toFixed(2)}`;
  const text = (whole / 1_000_000).toFixed(6).replace(/0+$/, "");
  return `$${text.endsWith(".") || /\.\d$/.test(text) ? (whole / 1_000_000).toFixed(2) : text}`;
}

/** What a status shows per window: spend, cap and unpriced requests. */
export interface SpendView {
  spentMicros: number;
  capMicros: number | null;
  unpriced: number;
  resetAt: number;
}

export function spendView(
  spend: SpendWindows,
  caps: SpendCaps | undefined,
  now: number,
): Record<BudgetWindow, SpendView> {
  const current = currentSpend(spend, now);
  const view = (window: BudgetWindow): SpendView => ({
    spentMicros: spentIn(current, window),
    capMicros: (caps && capOf(caps, window)) ?? null,
    unpriced: window === "day" ? current.dayUnpriced : current.monthUnpriced,
    resetAt: windowResetAt(window, now),
  });
  return { day: view("day"), month: view("month") };
}

const WINDOWS: readonly BudgetWindow[] = ["day", "month"];
const LEVELS: ReadonlyArray<[BudgetLevel, number]> = [
  ["warning", WARNING_SHARE],
  ["exhausted", 1],
];
const WORDS: Record<BudgetWindow, string> = { day: "today", month: "this month" };

function capOf(caps: SpendCaps, window: BudgetWindow): number | undefined {
  return window === "day" ? caps.dayMicros : caps.monthMicros;
}

function spentIn(spend: SpendWindows, window: BudgetWindow): number {
  return window === "day" ? spend.dayMicros : spend.monthMicros;
}

/** What one request's cost does to a key's or a pool's counters under its caps. */
export interface SpendPlan {
  spend: SpendWindows;
  /** Set when the caps are now spent: the key rests, or the pool refuses takes, until `until`. */
  rest?: BudgetRest;
  crossings: BudgetCrossing[];
}

export function planSpend(
  before: SpendWindows,
  micros: number,
  unpriced: boolean,
  caps: SpendCaps | undefined,
  now: number,
): SpendPlan {
  const spend = addSpend(before, micros, unpriced, now);
  const plan: SpendPlan = { spend, crossings: budgetCrossings(before, spend, caps, now) };
  const rest = budgetRest(spend, caps, now);
  if (rest) plan.rest = rest;
  return plan;
}

/** Whether any window has a cap. */
export function hasCaps(caps: SpendCaps | undefined): caps is SpendCaps {
  return caps !== undefined && (caps.dayMicros !== undefined || caps.monthMicros !== undefined);
}
