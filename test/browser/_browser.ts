import { type Browser, type BrowserContext, chromium } from "playwright-core";

/** Debian's Chromium; `.ci/run` installs it. Playwright downloads no browser of its own here. */
export const CHROMIUM = process.env.KEYPOOL_CHROMIUM ?? "/usr/bin/chromium";
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"];

export interface TestBrowser extends AsyncDisposable {
  browser: Browser;
  context: BrowserContext;
  /** Every request the pages tried to send beyond loopback (each was failed). */
  external: string[];
}

/**
 * A headless Chromium whose pages can reach loopback only: any other request is failed and
 * recorded, so a test can assert that a page works offline and leaks nothing.
 */
export async function launchBrowser(): Promise<TestBrowser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const external: string[] = [];
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.protocol === "data:" || url.protocol === "blob:" || isLoopback(url.hostname)) return route.continue();
    external.push(url.href);
    return route.abort("blockedbyclient");
  });
  return {
    browser,
    context,
    external,
    async [Symbol.asyncDispose]() {
      await browser.close();
    },
  };
}

function isLoopback(hostname: string): boolean {
  return (
    hostname === "localhost" || hostname === "[::1]" || hostname === "::1" || /^127\.\d+\.\d+\.\d+$/.test(hostname)
  );
}
