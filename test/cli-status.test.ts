import { describe, expect, it } from "bun:test";
import { renderStatus } from "../src/cli/commands/status";
import { startTestDaemon } from "./helpers/daemon";

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);
const BODY = {
  pools: { default: { total: 2, counts: { unknown: 0, live: 1, cooling: 1, quarantined: 0, dead: 0, disabled: 0 } } },
  keys: [
    {
      id: "a",
      pool: "default",
      masked: "sk-…aaaa",
      state: "live",
      until: null,
      requests: 3,
      errors: 0,
      in_flight: 0,
      reason: null,
    },
    {
      id: "b",
      pool: "default",
      masked: "sk-…bbbb",
      state: "cooling",
      until: new Date(NOW + 95_000).toISOString(),
      requests: 1,
      errors: 1,
      in_flight: 0,
      reason: "cooling after HTTP 429",
    },
  ],
};

describe("keypool status output", () => {
  it("is plain text with ISO times when not on a terminal", () => {
    const text = renderStatus(BODY, { color: false, now: NOW });
    expect(text).not.toContain("\x1b[");
    expect(text.split("\n")).toEqual([
      "pool default: 2 keys (1 live, 1 cooling)",
      "ID  TOKEN     STATE    UNTIL                     REQUESTS  ERRORS  IN_FLIGHT  REASON",
      "a   sk-…aaaa  live     -                         3         0       0          ",
      "b   sk-…bbbb  cooling  2026-01-01T12:01:35.000Z  1         1       0          cooling after HTTP 429",
    ]);
  });

  it("colors states and counts down to until on a terminal, keeping columns aligned", () => {
    const text = renderStatus(BODY, { color: true, now: NOW });
    expect(text).toContain("\x1b[33mcooling\x1b[0m");
    expect(text).toContain("\x1b[32m1 live\x1b[0m");
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the ANSI color codes the test strips are control characters
    const plain = text.replace(/\x1b\[\d+m/g, "").split("\n");
    expect(plain[3]).toStartWith("b   sk-…bbbb  cooling  in 1m35s  ");
  });
});

describe("keypool status --watch", () => {
  it("prints a fresh table every interval until interrupted, then exits 0", async () => {
    await using kp = await startTestDaemon(
      "tokens_file: tokens.txt\nstate_file: state.db\nserver:\n  addr: 127.0.0.1:0\n",
      "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\n",
    );
    const proc = Bun.spawn([process.execPath, "src/main.ts", "status", "--url", kp.url, "--watch", "0.05"], {
      stdout: "pipe",
      stderr: "pipe",
    });
    const reader = proc.stdout.getReader();
    let out = "";
    // Waits for output, not for time: two frames prove it refreshes.
    while ((out.match(/pool default: 1 keys/g) ?? []).length < 2) {
      const chunk = await reader.read();
      if (chunk.done) break;
      out += new TextDecoder().decode(chunk.value);
    }
    proc.kill("SIGINT");
    expect(await proc.exited).toBe(0);
    expect((out.match(/pool default: 1 keys/g) ?? []).length).toBeGreaterThanOrEqual(2);
    expect(out).not.toContain("\x1b[2J");
  });

  it("rejects an interval that is not a positive number", async () => {
    const proc = Bun.spawn(
      [process.execPath, "src/main.ts", "status", "--url", "http://127.0.0.1:9", "--watch", "soon"],
      { stdout: "pipe", stderr: "pipe" },
    );
    expect(await proc.exited).toBe(2);
    expect(await new Response(proc.stderr).text()).toContain("--watch takes a number of seconds");
  });
});
