import { describe, expect, it } from "bun:test";
import { jsonPost, startTestDaemon } from "./helpers/daemon";

const TOKENS =
  "a,sk-test-aaaaaaaaaaaaaaaa0001\nb,sk-test-bbbbbbbbbbbbbbbb0002\nc,sk-test-cccccccccccccccc0003\nd,sk-test-dddddddddddddddd0004\n";
const CONFIG = "tokens_file: tokens.txt\nstate_file: state.db\ncooldown_sec: 30\nserver:\n  addr: 127.0.0.1:0\n";

describe("GET /status, read as poolctl's /status", () => {
  it("counts keys by poolctl's statuses, with cooling as a flag, and lists them without tokens", async () => {
    await using kp = await startTestDaemon(CONFIG, TOKENS);
    expect((await kp.fetch("/take")).status).toBe(200);
    expect((await kp.fetch("/release", jsonPost({ id: "b", ok: false, status: 401 }))).status).toBe(200);
    expect((await kp.fetch("/pools/default/keys/c", { method: "PATCH", body: '{"enabled":false}' })).status).toBe(200);
    const text = await (await kp.fetch("/status")).text();
    const body = JSON.parse(text);
    // Key Pool Manager's fields (status, timestamp, models) ride along; test/compat-routes.test.ts pins those.
    const { pools, keys, tokens, status, timestamp, models, ...counts } = body;
    expect(counts).toEqual({ total: 4, live: 0, dead: 1, unknown: 2, quarantined: 1, cooling: 2 });
    const never = "0001-01-01T00:00:00Z";
    expect(
      body.tokens.map((t: Record<string, unknown>) => [t.id, t.status, t.cooling, t.last_check, t.last_used === never]),
    ).toEqual([
      // Taken: resting, still the health it had (never checked).
      ["a", "unknown", true, never, false],
      // No health check here, so the quarantine ends by itself: a rest. Its release counts as a use.
      ["b", "quarantined", true, never, false],
      // Disabled by an operator: poolctl's nearest word.
      ["c", "dead", false, never, true],
      ["d", "unknown", false, never, true],
    ]);
    expect(text).not.toContain("sk-test");
  });
});
