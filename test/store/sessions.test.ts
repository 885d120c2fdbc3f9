import type { Database } from "bun:sqlite";
import { describe, expect, it } from "bun:test";
import { ManualClock } from "../../src/pool/clock";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";

// What sticky sessions do is in the store contract (test/store/contract/sessions.ts); this is how SQLite does it.
describe("sticky sessions in SQLite", () => {
  it("looks a session up by its primary key and sweeps lapsed ones by the expiry index", async () => {
    const store = new SqliteStore({ path: ":memory:", clock: new ManualClock() });
    const db = (store as unknown as { db: Database }).db;
    const plan = (sql: string) =>
      (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as Array<{ detail: string }>).map((p) => p.detail);
    expect(plan("SELECT key_id, detour_id, expires_at FROM sessions WHERE pool = 'default' AND session = 's'")).toEqual(
      ["SEARCH sessions USING PRIMARY KEY (pool=? AND session=?)"],
    );
    expect(plan("DELETE FROM sessions WHERE pool = 'default' AND expires_at <= 5")).toEqual([
      "SEARCH sessions USING INDEX sessions_expiry (pool=? AND expires_at<?)",
    ]);
  });
});
