import { describe, expect, it } from "bun:test";
import { FULL_BUDGET, busyRank, initialRank, rankAfterRelease, rankAfterTake } from "../../src/pool/rotation";

const ctx = { now: 1_000_000, random: () => 0.5, maxRank: 0, virtualTime: 0 };

describe("most_remaining", () => {
  it("ranks a key by minus the requests the upstream says it has left", () => {
    expect(rankAfterRelease("most_remaining", { rank: -5, weight: 1 }, ctx.now, 700)).toBe(-700);
    // No headers on this answer: what we knew stands.
    expect(rankAfterRelease("most_remaining", { rank: -5, weight: 1 }, ctx.now, undefined)).toBe(-5);
  });

  it("ranks a key of unknown budget as if it were full, and spends one per take", () => {
    const start = initialRank("most_remaining", ctx);
    expect(start).toBe(-FULL_BUDGET);
    expect(rankAfterTake("most_remaining", { rank: start, weight: 1 }, ctx)).toBe(-FULL_BUDGET + 1);
  });
});

describe("least_busy", () => {
  it("puts fewer leases in flight first, then the least recently used", () => {
    const idle = rankAfterRelease("least_busy", { rank: 0, weight: 1, inFlight: 0 }, ctx.now);
    const busy = rankAfterTake("least_busy", { rank: 0, weight: 1, inFlight: 0 }, { ...ctx, now: ctx.now - 60_000 });
    const idleEarlier = busyRank(0, ctx.now - 1);
    expect(idleEarlier < idle && idle < busy).toBe(true);
    expect(busy).toBe(busyRank(1, ctx.now - 60_000));
  });
});
