/**
 * Scenario 8: reloads while the gateway is under steady load — a valid config (a key added, a key
 * removed, another rotation, another timeout) and then an invalid one — must not fail a single
 * request. Default: 500 req/s for 3 s; KEYPOOL_RELIABILITY_FULL=1: 1,000 req/s for 10 s.
 * (Reload semantics themselves are in test/reload.test.ts.)
 */
import { describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import YAML from "yaml";
import { startFakeUpstream } from "../helpers/fake-upstream";
import { spawnDaemon } from "../helpers/spawn-daemon";
import { tempDir } from "../helpers/temp-dir";
import { canary, leaksOf, tokensLines } from "./_canary";
import { scaled } from "./_scale";

const RATE = scaled(500, 1_000);
const SECONDS = scaled(3, 10);

describe("scenario 8: reload under load", () => {
  it(`fails no request at ${RATE} req/s for ${SECONDS} s through a valid and then an invalid reload`, async () => {
    await using fake = await startFakeUpstream(() => Response.json({ ok: true }));
    using dir = tempDir();
    const leak = canary("reload");
    const config = (extra: Record<string, unknown>) =>
      YAML.stringify({
        tokens_file: "tokens.txt",
        state_file: "state.db",
        cooldown_sec: 0,
        server: { addr: "127.0.0.1:0" },
        upstream: { enabled: true, listen: "127.0.0.1:0", base_url: fake.url, cooldown_sec: 0 },
        ...extra,
      });
    const key = (id: string) => `${id},sk-reload-${id.repeat(24)}\n`;
    writeFileSync(dir.file("tokens.txt"), key("a") + key("b") + tokensLines([leak]));
    writeFileSync(dir.file("keypool.yaml"), config({}));
    await using daemon = await spawnDaemon(["serve", "-c", dir.file("keypool.yaml")]);
    const gatewayUrl = JSON.parse(await daemon.waitForLog(/"msg":"keypool gateway listening"/)).url as string;

    const failures: string[] = [];
    const total = RATE * SECONDS;
    const started = performance.now();
    const inFlight: Promise<void>[] = [];
    const reloads: Array<Promise<unknown>> = [];
    for (let i = 0; i < total; i++) {
      const due = started + (i * 1000) / RATE;
      // Pacing, not waiting for a condition: the scenario is defined as a request rate.
      if (due > performance.now()) await Bun.sleep(due - performance.now());
      inFlight.push(
        fetch(`${gatewayUrl}/v1/chat/completions`, { method: "POST", body: "{}" }).then(
          async (response) => {
            const body = await response.text();
            if (response.status !== 200) failures.push(`${response.status} ${body}`);
          },
          (error: Error) => void failures.push(error.message),
        ),
      );
      if (i === Math.floor(total / 3)) {
        // Valid: b goes, c and d come, another rotation and timeout.
        writeFileSync(dir.file("tokens.txt"), key("a") + key("c") + key("d") + tokensLines([leak]));
        writeFileSync(
          dir.file("keypool.yaml"),
          config({
            rotation: "round_robin",
            upstream: { enabled: true, listen: "127.0.0.1:0", base_url: fake.url, cooldown_sec: 0, timeout_sec: 30 },
          }),
        );
        reloads.push(fetch(`${daemon.url}/reload`, { method: "POST" }).then(async (r) => [r.status, await r.json()]));
      }
      if (i === Math.floor((2 * total) / 3)) {
        writeFileSync(dir.file("keypool.yaml"), config({ rotation: "fastest" }));
        reloads.push(
          fetch(`${daemon.url}/reload`, { method: "POST" }).then(async (r) => [r.status, (await r.json()).error.code]),
        );
        daemon.proc.kill("SIGHUP");
      }
    }
    await Promise.all(inFlight);
    const seconds = (performance.now() - started) / 1000;
    console.log(`reload under load: ${total} requests in ${seconds.toFixed(1)} s, ${failures.length} failed`);

    expect(await Promise.all(reloads)).toEqual([
      [200, { ok: true, pools: { default: { added: 2, updated: 0, removed: 1, kept: 2 } } }],
      [400, "INVALID_CONFIG"],
    ]);
    await daemon.waitForLog(/"msg":"reload rejected; keeping the running config".*"trigger":"SIGHUP"/);
    expect(failures).toEqual([]);
    expect(fake.calls.length).toBe(total);
    const ids = (await (await fetch(`${daemon.url}/status`)).json()).keys.map((k: { id: string }) => k.id);
    expect(ids.sort()).toEqual(["a", "c", leak.id, "d"].sort());
    expect(leaksOf([leak], [daemon.log()])).toEqual([]);
  }, 60_000);
});
