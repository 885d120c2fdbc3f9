import { describe, expect, it } from "bun:test";
import { startTestDaemon } from "../helpers/daemon";
import { launchBrowser } from "./_browser";

const CONFIG =
  "tokens_file: tokens.txt\nstate_file: state.db\nserver:\n  addr: 127.0.0.1:0\n  api_key: swagger-admin-key-1234\n";

describe("Swagger UI in a browser", () => {
  it("renders the API from keypool's own assets and lists /take, with nothing fetched beyond loopback", async () => {
    await using kp = await startTestDaemon(CONFIG, "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\n");
    await using chrome = await launchBrowser();
    const page = await chrome.context.newPage();
    const failed: string[] = [];
    page.on("requestfailed", (request) => failed.push(request.url()));
    await page.goto(`${kp.url}/swagger`);
    await page
      .locator(".opblock-summary-path", { hasText: /^\/take$/ })
      .first()
      .waitFor();
    expect(await page.locator(".info .title").innerText()).toContain("keypool");
    const paths = await page.locator(".opblock-summary-path").allInnerTexts();
    expect(paths).toEqual(expect.arrayContaining(["/take", "/release", "/status", "/metrics"]));
    // The key goes in through Authorize; the button is there because the spec declares the schemes.
    expect(await page.locator("button.authorize").count()).toBe(1);
    expect(chrome.external).toEqual([]);
    expect(failed).toEqual([]);
  });
});
