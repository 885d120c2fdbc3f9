import { describe, expect, it } from "bun:test";
import { jsonPost, startTestDaemon } from "../helpers/daemon";
import { launchBrowser } from "./_browser";

const ADMIN_KEY = "dash-admin-key-12345678";
const CONFIG = `state_file: state.db
cooldown_sec: 45
server:
  addr: 127.0.0.1:0
  api_key: ${ADMIN_KEY}
pools:
  alpha:
    tokens_file: tokens.txt
  beta:
    tokens_file: tokens.txt
`;
const TOKENS = "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\nb,sk-test-bbbbbbbbbbbbbbbbbbbbbbbb\n";

describe("the dashboard in a browser", () => {
  it("asks for the API key, shows every pool, a key's state change after a failure, and the prompt-cache hit ratio", async () => {
    await using kp = await startTestDaemon(CONFIG, TOKENS);
    await using chrome = await launchBrowser();
    const page = await chrome.context.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (error) => pageErrors.push(error.message));

    // A fast refresh so the change shows within the test; the page polls /status and /ui/data.
    await page.goto(`${kp.url}/ui?interval=200`);
    await page.locator("#login").waitFor();
    await page.fill("#key", ADMIN_KEY);
    await page.click("#login button[type=submit]");
    await page.locator('[data-pool="beta"]').waitFor();
    expect(
      await page.locator("[data-pool]").evaluateAll((cards) => cards.map((c) => c.getAttribute("data-pool"))),
    ).toEqual(["alpha", "beta"]);
    await page.locator('tr[data-key="alpha/b"][data-state="unknown"]').waitFor();

    // Scripted failures: an auth failure on b and a rate limit on a. Whatever state the failure
    // policy puts them in, the page must come to show what /status says, with a live countdown.
    const report = async (body: object) =>
      (await kp.fetch("/release", { ...jsonPost(body), apiKey: ADMIN_KEY })).json();
    const b = await report({ id: "b", pool: "alpha", ok: false, status: 401 });
    const a = await report({ id: "a", pool: "alpha", ok: false, status: 429 });
    expect([a.state, b.state]).not.toContain("unknown");
    const bRow = page.locator(`tr[data-key="alpha/b"][data-state="${b.state}"]`);
    await bRow.waitFor();
    expect(await bRow.innerText()).toContain(b.reason);
    await page.locator(`tr[data-key="alpha/a"][data-state="${a.state}"]`).waitFor();
    expect(await page.locator('tr[data-key="alpha/a"] td[data-until]').innerText()).toMatch(/^in \d/);

    // The pool's card counts the change and charts the two errors of this minute.
    const alpha = page.locator('[data-pool="alpha"]');
    await alpha.locator(`[data-state="${b.state}"] b`, { hasText: b.state === a.state ? "2" : "1" }).waitFor();
    await alpha.locator("[data-error-rate]", { hasText: "100.0% errors" }).waitFor();
    expect(await alpha.locator("svg rect").count()).toBeGreaterThan(0);

    // The prompt-cache hit ratio of the last day, on the pool's card and the key's row.
    await report({ id: "a", pool: "alpha", ok: true, input_tokens: 4000, output_tokens: 10, cached_tokens: 3000 });
    await alpha.locator("[data-cache-hit]", { hasText: "cache hit 75% · 3k of 4k input tokens (24h)" }).waitFor();
    await page.locator('tr[data-key="alpha/a"] td[data-cache-hit]', { hasText: "75%" }).waitFor();
    expect(await page.locator('[data-pool="beta"] [data-cache-hit]').innerText()).toBe(
      "cache hit: no input in the last day",
    );

    // The key is kept for the tab, and the page loaded nothing from anywhere else.
    expect(await page.evaluate(() => sessionStorage.getItem("keypool.apiKey"))).toBe(ADMIN_KEY);
    expect(chrome.external).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});

describe("the dashboard's models", () => {
  it("shows on a key's row the models it rests or lacks, with a countdown and why, and its models= list", async () => {
    await using kp = await startTestDaemon(
      CONFIG,
      "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\nb,sk-test-bbbbbbbbbbbbbbbbbbbbbbbb,1,models=m-small|m-mid\n",
    );
    await using chrome = await launchBrowser();
    const page = await chrome.context.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (error) => pageErrors.push(error.message));
    await page.goto(`${kp.url}/ui?interval=200`);
    await page.fill("#key", ADMIN_KEY);
    await page.click("#login button[type=submit]");
    await page.locator('tr[data-key="alpha/b"] [data-only-models]', { hasText: "only m-small, m-mid" }).waitFor();

    // A 429 on m-big rests only the (a, m-big) pair: the key stays live and its row names the model.
    const release = { id: "a", pool: "alpha", ok: false, status: 429, model: "m-big" };
    expect((await kp.fetch("/release", { ...jsonPost(release), apiKey: ADMIN_KEY })).status).toBe(200);
    const pair = page.locator('tr[data-key="alpha/a"][data-state="unknown"] [data-model="m-big"]');
    await pair.and(page.locator('[data-pair-state="cooling"]')).waitFor();
    expect(await pair.innerText()).toMatch(/^m-big cooling in \d/);
    expect(await pair.getAttribute("title")).toContain("rate_limit");
    expect(await page.locator('tr[data-key="alpha/a"] [data-only-models]').count()).toBe(0);
    expect(chrome.external).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
