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

describe("keypool status output for model-aware keys", () => {
  const at = (ms: number) => new Date(NOW + ms).toISOString();
  const MODELS_BODY: Parameters<typeof renderStatus>[0] = {
    pools: { default: { total: 2, counts: { unknown: 0, live: 2, cooling: 0, quarantined: 0, dead: 0, disabled: 0 } } },
    keys: [
      {
        ...BODY.keys[0]!,
        models: {
          "m-x": { state: "denied", until: at(5 * 3600_000), reason: "no access to this model (HTTP 404)" },
          "m-big": { state: "cooling", until: at(275_000), reason: "rate_limit (HTTP 429); rung 1, resting 5m" },
        },
        only_models: null,
      },
      { ...BODY.keys[1]!, state: "live", until: null, reason: null, models: {}, only_models: ["m-big", "m-small"] },
    ],
  };

  it("lists the pairs that cannot serve under the keys, and a key's models= restriction", () => {
    expect(renderStatus(MODELS_BODY, { color: false, now: NOW }).split("\n")).toEqual([
      "pool default: 2 keys (2 live)",
      "ID  TOKEN     STATE  UNTIL  REQUESTS  ERRORS  IN_FLIGHT  MODELS         REASON",
      "a   sk-…aaaa  live   -      3         0       0          any            ",
      "b   sk-…bbbb  live   -      1         1       0          m-big|m-small  ",
      "models resting or denied (each key still serves its other models):",
      "KEY  MODEL  STATE    UNTIL                     REASON",
      "a    m-big  cooling  2026-01-01T12:04:35.000Z  rate_limit (HTTP 429); rung 1, resting 5m",
      "a    m-x    denied   2026-01-01T17:00:00.000Z  no access to this model (HTTP 404)",
    ]);
  });

  it("counts down to each pair's end on a terminal", () => {
    const plain = stripColor(renderStatus(MODELS_BODY, { color: true, now: NOW })).split("\n");
    expect(plain.slice(-2)).toEqual([
      "a    m-big  cooling  in 4m35s  rate_limit (HTTP 429); rung 1, resting 5m",
      "a    m-x    denied   in 5h00m  no access to this model (HTTP 404)",
    ]);
  });

  it("adds nothing for a pool whose keys serve every model", () => {
    const text = renderStatus(
      { ...BODY, keys: BODY.keys.map((k) => ({ ...k, models: {}, only_models: null })) },
      {
        color: false,
        now: NOW,
      },
    );
    expect(text).toBe(renderStatus(BODY, { color: false, now: NOW }));
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

// biome-ignore lint/suspicious/noControlCharactersInRegex: the ANSI color codes stripped are control characters
const ANSI_COLOR = /\x1b\[\d+m/g;
const stripColor = (text: string) => text.replace(ANSI_COLOR, "");
