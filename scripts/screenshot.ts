/**
 * Takes docs/dashboard.png: a daemon with three pools is fed an hour of made-up broker traffic on a
 * manual clock (so the charts have history), then Debian's Chromium photographs /ui.
 *
 *   bun scripts/screenshot.ts [OUT.png]
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";
import { parseConfig } from "../src/config/load";
import { createDaemon } from "../src/daemon/create-daemon";
import { silentLogger } from "../src/log";
import { ManualClock } from "../src/pool/clock";

const OUT = resolve(process.argv[2] ?? join(import.meta.dir, "..", "docs", "dashboard.png"));
const MINUTE = 60_000;
const POOLS = { openai: 6, anthropic: 4, gemini: 3 };

const dir = mkdtempSync(join(tmpdir(), "keypool-shot-"));
let yaml = "state_file: ':memory:'\ncooldown_sec: 0\nserver:\n  addr: 127.0.0.1:0\npools:\n";
for (const [pool, size] of Object.entries(POOLS)) {
  const tokens = Array.from({ length: size }, (_, i) => `${pool}-${i + 1},sk-${pool}-${String(i + 1).repeat(24)}`).join(
    "\n",
  );
  writeFileSync(join(dir, `${pool}.txt`), `${tokens}\n`);
  yaml += `  ${pool}:\n    tokens_file: ${pool}.txt\n`;
}

// A seeded generator: the same picture every run.
let seed = 7;
const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;

const now = Date.now();
const clock = new ManualClock(now - 59 * MINUTE);
const daemon = await createDaemon(parseConfig(yaml, { baseDir: dir, env: {} }), {
  clock,
  logger: silentLogger,
  port: 0,
  autoCheck: false,
  random,
});
try {
  await daemon.start();
  for (let minute = 0; minute < 60; minute++) {
    clock.set(now - (59 - minute) * MINUTE);
    for (const [pool, size] of Object.entries(POOLS)) {
      const load = Math.round((12 + 8 * Math.sin(minute / 7 + size)) * (0.6 + random() * 0.6));
      // Errors come in a burst half an hour ago, and a trickle otherwise.
      const errorRate = minute > 28 && minute < 36 && pool === "openai" ? 0.35 : 0.03;
      for (let i = 0; i < load; i++) {
        const lease = await daemon.broker.take(pool).catch(() => undefined);
        if (!lease) continue; // every key resting: a real client would wait too
        const failed = random() < errorRate;
        // Answers report their tokens; a conversation's later turns read most of their prompt from the upstream's cache.
        const input = 800 + Math.round(random() * 2400);
        const usage = failed
          ? {}
          : {
              input_tokens: input,
              output_tokens: 150 + Math.round(random() * 300),
              cached_tokens: Math.round(input * (0.35 + random() * 0.4)),
            };
        await daemon.broker.release({
          lease: lease.lease,
          ok: !failed,
          status: failed ? (random() < 0.8 ? 429 : 503) : 200,
          ...usage,
        });
      }
    }
  }
  clock.set(now);
  // Leave a few keys in telling states.
  await daemon.broker.release({ id: "openai-3", pool: "openai", ok: false, status: 401 });
  await daemon.store.release({ id: "openai-5", pool: "openai" }, { ok: false, status: 429, retryAfterMs: 95_000 });
  await daemon.store.release(
    { id: "anthropic-2", pool: "anthropic" },
    { ok: false, status: 529, retryAfterMs: 40_000 },
  );
  for (const [pool, size] of Object.entries(POOLS)) {
    for (let i = 1; i <= size; i++)
      if (!["openai-3", "openai-5", "anthropic-2", "gemini-3"].includes(`${pool}-${i}`))
        await daemon.broker.release({ id: `${pool}-${i}`, pool, ok: true });
  }

  const browser = await chromium.launch({
    executablePath: process.env.KEYPOOL_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 860 }, colorScheme: "light" });
    await page.goto(`${daemon.url}/ui`);
    await page.locator('[data-pool="gemini"]').waitFor();
    await page.locator('tr[data-key="openai-5"], tr[data-key="openai/openai-5"]').first().waitFor();
    await page.screenshot({ path: OUT, fullPage: true });
    console.log(`wrote ${OUT}`);
  } finally {
    await browser.close();
  }
} finally {
  await daemon.stop({ timeoutSec: 1 });
  rmSync(dir, { recursive: true, force: true });
}
