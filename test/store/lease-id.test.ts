import { describe, expect, it } from "bun:test";
import { newLeaseId } from "../../src/store/lease-id";

describe("newLeaseId", () => {
  it("makes ls_ and 32 hex digits, never the same twice, across refills of its random bytes", () => {
    // 1,000 ids draw 16,000 bytes: the 4,096-byte buffer of randomness is refilled three times.
    const ids = Array.from({ length: 1000 }, () => newLeaseId());
    expect(ids.filter((id) => !/^ls_[0-9a-f]{32}$/.test(id))).toEqual([]);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("spreads every hex digit over every position (the ids are random, not a counter)", () => {
    const seen = Array.from({ length: 32 }, () => new Set<string>());
    for (let n = 0; n < 2000; n++) {
      const hex = newLeaseId().slice(3);
      for (let i = 0; i < 32; i++) seen[i]!.add(hex[i]!);
    }
    expect(seen.map((digits) => digits.size)).toEqual(Array(32).fill(16));
  });
});
