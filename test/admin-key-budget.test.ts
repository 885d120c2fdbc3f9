import { describe, expect, it } from "bun:test";
import { ManualClock } from "../src/pool/clock";
import { jsonPost, startTestDaemon, adminClient } from "./helpers/daemon";
import { runKeypool } from "./helpers/run-keypool";

const API_KEY = "admin-budget-key-41";
const CANARY = "sk-canary-budget-5e4d3c2b1a09f8e7d6c5";
const CONFIG = `
tokens_file: tokens.txt
state_file: state.db
cooldown_sec: 0
server: { addr: "127.0.0.1:0", api_key: ${API_KEY} }
prices: { m: { input_per_mtok: 1, output_per_mtok: 1 } }
`;
const FILE_TOKENS = "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\n";
const NOON = Date.UTC(2026, 2, 3, 12);
const MIDNIGHT = Date.UTC(2026, 2, 4);

type Kp = Awaited<ReturnType<typeof startTestDaemon>>;

const client = (kp: Kp, seen: string[] = []) => adminClient(kp, API_KEY, seen);

describe("a key's spend caps through the admin API", () => {
  it("sets, changes and clears an API key's caps in USD per UTC day and month", async () => {
    await using kp = await startTestDaemon(CONFIG, FILE_TOKENS, { clock: new ManualClock(NOON) });
    const seen: string[] = [];
    const call = client(kp, seen);
    const added = await call("POST", "/pools/default/keys", { id: "c", token: CANARY, budget: { day: 0.25 } });
    expect([added.status, added.body.budget]).toEqual([200, { day: 0.25, month: null }]);
    const budgetAfter = async (budget: unknown) =>
      (await call("PATCH", "/pools/default/keys/c", { budget })).body.budget;
    expect(await budgetAfter({ month: 5 })).toEqual({ day: 0.25, month: 5 });
    expect(await budgetAfter({ day: null })).toEqual({ day: null, month: 5 });
    expect(await budgetAfter({ day: 0.000001, month: null })).toEqual({ day: 0.000001, month: null });
    const listed = await call("GET", "/pools/default/keys");
    expect(listed.body.keys.map((k: { id: string; budget: unknown }) => [k.id, k.budget])).toEqual([
      ["a", { day: null, month: null }],
      ["c", { day: 0.000001, month: null }],
    ]);
    expect(seen.join("\n")).not.toContain(CANARY.slice(-12));
  });

  const range = (window: string) =>
    `budget.${window}: expected an amount of USD > 0 and ≤ 1000000000 (e.g. ${window === "day" ? 10 : 200}), or null for no cap`;
  it.each([
    ["zero", { day: 0 }, range("day")],
    ["negative", { month: -1 }, range("month")],
    ["past the bound", { day: 2e9 }, range("day")],
    ["not a number", { day: "ten" }, range("day")],
    ["an unknown window", { week: 1 }, "budget.week: Property 'budget.week' should not be provided"],
    ["not an object", 5, "budget: Expected object"],
  ])("answers 400 for a cap that is %s, and changes nothing", async (_what, budget, message) => {
    await using kp = await startTestDaemon(CONFIG, FILE_TOKENS);
    const call = client(kp);
    await call("POST", "/pools/default/keys", { id: "c", token: CANARY, budget: { day: 1 } });
    for (const [method, path] of [
      ["POST", "/pools/default/keys"],
      ["PATCH", "/pools/default/keys/c"],
    ] as const) {
      const refused = await call(method, path, { ...(method === "POST" && { id: "d", token: `${CANARY}d` }), budget });
      expect(refused).toEqual({ status: 400, body: { error: { code: "BAD_REQUEST", message } } });
    }
    const keys = (await call("GET", "/pools/default/keys")).body.keys as Array<{ id: string; budget: unknown }>;
    expect(keys.map((k) => [k.id, k.budget])).toEqual([
      ["a", { day: null, month: null }],
      ["c", { day: 1, month: null }],
    ]);
  });

  it("refuses to cap a key its tokens file owns (budget_day= belongs there)", async () => {
    await using kp = await startTestDaemon(CONFIG, FILE_TOKENS);
    const refused = await client(kp)("PATCH", "/pools/default/keys/a", { budget: { day: 1 } });
    expect([refused.status, refused.body.error.code]).toEqual([409, "KEY_OWNED_BY_FILE"]);
  });

  it("counts what the key already spent today when a cap is set: a spent cap rests it at once, a raised one frees it", async () => {
    const clock = new ManualClock(NOON);
    await using kp = await startTestDaemon(CONFIG, FILE_TOKENS, { clock, autoCheck: false });
    const call = client(kp);
    await call("POST", "/pools/default/keys", { id: "c", token: CANARY });
    // $0.0005 spent before any cap: only the usage ledger holds it.
    const spent = await kp.fetch("/release", {
      ...jsonPost({ id: "c", ok: true, input_tokens: 300, output_tokens: 200, model: "m" }),
      apiKey: API_KEY,
    });
    expect(spent.status).toBe(200);

    const capped = await call("PATCH", "/pools/default/keys/c", { budget: { day: 0.0005 } });
    expect(capped.body).toMatchObject({ state: "cooling", reason: "budget: $0.0005 of $0.0005 today" });
    const status = (await (await kp.fetch("/status", { apiKey: API_KEY })).json()) as {
      keys: Array<{ id: string; until: string }>;
    };
    expect(status.keys.find((k) => k.id === "c")?.until).toBe(new Date(MIDNIGHT).toISOString());

    const raised = await call("PATCH", "/pools/default/keys/c", { budget: { day: 0.01 } });
    expect(raised.body).toMatchObject({ state: "live", reason: "spend cap raised" });
  });
});

describe("keypool keys add --budget-day / --budget-month", () => {
  it("adds a key with its own caps, and refuses an amount that is not > 0 naming the flag", async () => {
    await using kp = await startTestDaemon(CONFIG, FILE_TOKENS);
    const auth = ["--url", kp.url, "--api-key", API_KEY];
    const add = (...flags: string[]) =>
      runKeypool(["keys", "add", ...auth, "--id", "c", "--token-env", "NEW_KEY", "--json", ...flags], {
        env: { NEW_KEY: CANARY },
      });
    const refused = await add("--budget-day", "0");
    expect([refused.code, refused.stderr.trim()]).toEqual([
      2,
      '--budget-day takes an amount of USD > 0 and ≤ 1000000000, e.g. 10.00, got "0"',
    ]);
    const added = await add("--budget-day", "2.50", "--budget-month", "40");
    expect(added.code).toBe(0);
    expect(JSON.parse(added.stdout).budget).toEqual({ day: 2.5, month: 40 });
    expect(added.stdout + added.stderr + refused.stdout + refused.stderr).not.toContain(CANARY.slice(-12));
  });
});
