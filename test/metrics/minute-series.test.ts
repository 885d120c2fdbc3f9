import { describe, expect, it } from "bun:test";
import { MinuteSeries, SERIES_MINUTES } from "../../src/metrics/minute-series";

const T0 = Date.UTC(2026, 0, 1, 12, 0, 30);
const MINUTE = 60_000;

describe("MinuteSeries", () => {
  it("keeps requests and errors per minute for the last hour, oldest first", () => {
    const series = new MinuteSeries();
    series.record("p", false, T0);
    series.record("p", true, T0 + 10_000);
    series.record("p", false, T0 + 2 * MINUTE);
    const last = series.last("p", T0 + 2 * MINUTE);
    expect(last).toHaveLength(SERIES_MINUTES);
    expect(last.slice(-3).map(({ requests, errors }) => ({ requests, errors }))).toEqual([
      { requests: 2, errors: 1 },
      { requests: 0, errors: 0 },
      { requests: 1, errors: 0 },
    ]);
  });

  it("forgets a minute once it is an hour old, even though its slot is reused", () => {
    const series = new MinuteSeries();
    series.record("p", true, T0);
    const anHourLater = T0 + SERIES_MINUTES * MINUTE;
    expect(series.last("p", anHourLater).every((m) => m.requests === 0)).toBe(true);
    series.record("p", false, anHourLater);
    expect(series.last("p", anHourLater).at(-1)).toMatchObject({ requests: 1, errors: 0 });
  });

  it("answers zeros for a pool with no traffic", () => {
    expect(new MinuteSeries().last("quiet", T0).reduce((n, m) => n + m.requests, 0)).toBe(0);
  });
});
