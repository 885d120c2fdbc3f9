/**
 * A key's own limits (`rpm`, `tpm`, `daily_requests`), counted in fixed windows that open with the
 * first request after the previous window closed. A key that reaches a limit rests until its
 * window closes, so the store's ordinary "ready_at" skip is all it takes to honour it.
 */

import { MAX_REQUEST_TOKENS, clampCount } from "./bounds";

export interface KeyLimits {
  rpm?: number;
  tpm?: number;
  dailyRequests?: number;
}

export interface UsageWindows {
  minuteStart: number;
  minuteRequests: number;
  minuteTokens: number;
  dayStart: number;
  dayRequests: number;
}

export interface LimitRest {
  until: number;
  reason: string;
}

export const MINUTE_MS = 60_000;
export const DAY_MS = 86_400_000;

export const EMPTY_WINDOWS: UsageWindows = {
  minuteStart: 0,
  minuteRequests: 0,
  minuteTokens: 0,
  dayStart: 0,
  dayRequests: 0,
};

export function hasRequestLimits(limits: KeyLimits): boolean {
  return limits.rpm !== undefined || limits.dailyRequests !== undefined;
}

/**
 * The windows after adding `requests` and `tokens`, with a new window opened wherever the old one
 * has closed: one object, as a release builds one per request.
 */
function counted(w: UsageWindows, now: number, requests: number, tokens: number): UsageWindows {
  const minuteOpen = now < w.minuteStart + MINUTE_MS;
  const dayOpen = now < w.dayStart + DAY_MS;
  return {
    minuteStart: minuteOpen ? w.minuteStart : now,
    minuteRequests: (minuteOpen ? w.minuteRequests : 0) + requests,
    minuteTokens: (minuteOpen ? w.minuteTokens : 0) + tokens,
    dayStart: dayOpen ? w.dayStart : now,
    dayRequests: (dayOpen ? w.dayRequests : 0) + requests,
  };
}

/** Counts one request (a take); when it uses up a limit, the key rests until that window closes. */
export function countRequest(
  w: UsageWindows,
  limits: KeyLimits,
  now: number,
): { windows: UsageWindows; rest?: LimitRest } {
  const windows = counted(w, now, 1, 0);
  const rests: LimitRest[] = [];
  if (limits.rpm !== undefined && windows.minuteRequests >= limits.rpm) {
    rests.push({
      until: windows.minuteStart + MINUTE_MS,
      reason: `rpm limit (${limits.rpm}) reached; resting until the minute window closes`,
    });
  }
  if (limits.dailyRequests !== undefined && windows.dayRequests >= limits.dailyRequests) {
    rests.push({
      until: windows.dayStart + DAY_MS,
      reason: `daily_requests limit (${limits.dailyRequests}) reached; resting until the day window closes`,
    });
  }
  return { windows, rest: latest(rests) };
}

/** Counts tokens a finished request used; at `tpm`, the key rests until the minute window closes. */
export function countTokens(
  w: UsageWindows,
  tokens: number,
  limits: KeyLimits,
  now: number,
): { windows: UsageWindows; rest?: LimitRest } {
  const windows = counted(w, now, 0, clampCount(Math.round(tokens), MAX_REQUEST_TOKENS));
  if (limits.tpm === undefined || windows.minuteTokens < limits.tpm) return { windows };
  return {
    windows,
    rest: {
      until: windows.minuteStart + MINUTE_MS,
      reason: `tpm limit (${limits.tpm}) reached; resting until the minute window closes`,
    },
  };
}

function latest(rests: LimitRest[]): LimitRest | undefined {
  return rests.reduce<LimitRest | undefined>((best, r) => (!best || r.until > best.until ? r : best), undefined);
}
