/**
 * Spend against caps is visible (issue 20): GET /status (each capped key and the pool), `keypool status`'s
 * table, and /metrics — with requests that could not be priced counted apart, and no token anywhere.
 */
import { describe, expect, it } from "bun:test";
import { renderStatus } from "../src/cli/commands/status";
import { ManualClock } from "../src/pool/clock";
import { jsonPost, startTestDaemon } from "./helpers/daemon";
import { parsePrometheusText, sampleValue } from "./helpers/prometheus-text";
import { canary, leaksOf } from "./reliability/_canary";

const NOON = Date.UTC(2026, 0, 14, 12);
const CONFIG = `
server: { addr: "127.0.0.1:0" }
state_file: state.db
tokens_file: tokens.txt
cooldown_sec: 0
budget: { day: 0.01, month: 1 }
prices: { m: { input_per_mtok: 1, output_per_mtok: 1 } }
`;
const CANARY = canary("spend-visible");
const TOKENS = `a,${CANARY.token},1,budget_day=0.002\nb,sk-spend-visible-bbbbbbbbbbbbbbbb\n`;

describe("spend against caps, where operators look", () => {
  it("shows each capped key's and the pool's spend in /status, keypool status and /metrics", async () => {
    const clock = new ManualClock(NOON);
    await using kp = await startTestDaemon(CONFIG, TOKENS, { clock, autoCheck: false });
    await kp.fetch("/release", jsonPost({ id: "a", ok: true, model: "m", input_tokens: 1000, output_tokens: 500 }));
    await kp.fetch("/release", jsonPost({ id: "b", ok: true, model: "m", input_tokens: 400, output_tokens: 100 }));
    // No price for this model: counted as unpriced, never as $0.
    await kp.fetch("/release", jsonPost({ id: "b", ok: true, model: "other", input_tokens: 9000, output_tokens: 1 }));

    const status = await (await kp.fetch("/status")).json();
    const key = (id: string) => status.keys.find((k: { id: string }) => k.id === id);
    expect(key("a").spend).toEqual({
      day: { spent_usd: 0.0015, cap_usd: 0.002, unpriced: 0, resets_at: "2026-01-15T00:00:00.000Z" },
      month: { spent_usd: 0.0015, cap_usd: null, unpriced: 0, resets_at: "2026-02-01T00:00:00.000Z" },
    });
    expect(key("b").spend.day).toEqual({
      spent_usd: 0.0005,
      cap_usd: null,
      unpriced: 1,
      resets_at: "2026-01-15T00:00:00.000Z",
    });
    expect(status.pools.default.spend).toEqual({
      day: { spent_usd: 0.002, cap_usd: 0.01, unpriced: 1, resets_at: "2026-01-15T00:00:00.000Z" },
      month: { spent_usd: 0.002, cap_usd: 1, unpriced: 1, resets_at: "2026-02-01T00:00:00.000Z" },
    });

    const table = renderStatus(status, { color: false, now: NOON });
    expect(table).toContain("budget $0.002/$0.01 today, $0.002/$1.00 this month (+1 unpriced)");
    expect(table.split("\n").find((line) => line.startsWith("a "))).toContain("$0.0015/$0.002 today");
    expect(table.split("\n").find((line) => line.startsWith("b "))).toContain("$0.0005 today (+1 unpriced)");

    const metricsText = await (await kp.fetch("/metrics")).text();
    const samples = parsePrometheusText(metricsText);
    expect(sampleValue(samples, "keypool_spend_usd", { pool: "default", key: "", window: "day" })).toBeCloseTo(0.002);
    expect(sampleValue(samples, "keypool_budget_usd", { pool: "default", key: "", window: "month" })).toBe(1);
    expect(sampleValue(samples, "keypool_spend_usd", { pool: "default", key: "a", window: "day" })).toBeCloseTo(0.0015);
    expect(sampleValue(samples, "keypool_budget_usd", { pool: "default", key: "a", window: "day" })).toBe(0.002);
    expect(sampleValue(samples, "keypool_budget_usd", { pool: "default", key: "b", window: "day" })).toBeUndefined();
    expect(sampleValue(samples, "keypool_unpriced_requests", { pool: "default", key: "", window: "day" })).toBe(1);

    expect(leaksOf([CANARY], [JSON.stringify(status), table, metricsText, ...kp.logs])).toEqual([]);
  });

  it("shows no spend where no cap applies", async () => {
    await using kp = await startTestDaemon(
      CONFIG.replace("budget: { day: 0.01, month: 1 }\n", ""),
      "a,sk-nocap-aaaaaaaaaaaaaaaaa\n",
      {
        autoCheck: false,
      },
    );
    await kp.fetch("/release", jsonPost({ id: "a", ok: true, model: "m", input_tokens: 10, output_tokens: 10 }));
    const status = await (await kp.fetch("/status")).json();
    expect([status.pools.default.spend, status.keys[0].spend]).toEqual([null, null]);
    const samples = parsePrometheusText(await (await kp.fetch("/metrics")).text());
    expect(samples.filter((s) => s.name === "keypool_spend_usd")).toEqual([]);
  });
});
