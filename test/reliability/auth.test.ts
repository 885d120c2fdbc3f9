/**
 * Scenario 12: wrong admin keys (server.api_key) and wrong gateway client keys (upstream.client_keys)
 * of every length and shape get a 401 — no exception, no 500, no error in the log — and how long a
 * refusal takes does not depend on how much of the key was right. Timing is compared in-process
 * (app.handle, no sockets) as medians of interleaved batches, with a bound far above the noise, so
 * it holds on a busy machine and still catches a comparison that stops at the first wrong byte on
 * long keys.
 */
import { describe, expect, it } from "bun:test";
import YAML from "yaml";
import { createSecretMatcher } from "../../src/pool/secret-match";
import { startTestDaemon } from "../helpers/daemon";
import { startGateway } from "../helpers/gateway-harness";
import { canary, leaksOf } from "./_canary";

const ADMIN_KEY = `ak-${"0123456789abcdef".repeat(4)}`;
const CLIENT_KEY = `ck-${"fedcba9876543210".repeat(4)}`;
const LEAK = canary("auth");

/** Wrong keys: every length up to well past the real one, huge ones, odd characters, near misses. */
function wrongKeys(right: string): string[] {
  const lengths = [...Array.from({ length: 130 }, (_, n) => n), 1000, 8000];
  return [
    ...lengths.map((n) => "k".repeat(n)),
    ...lengths.filter((n) => n > 0 && n < right.length).map((n) => right.slice(0, n)),
    `${right}x`,
    `x${right}`,
    right.toUpperCase(),
    `${right.slice(0, -1)}é`,
    "ключ",
    "null",
    "undefined",
    "\u00ff".repeat(50),
  ];
}

/** Medians, per call, of `rounds` interleaved batches of `a` and `b` (which goes first alternates). */
async function interleavedMedians(
  a: () => unknown,
  b: () => unknown,
  rounds: number,
  batch: number,
): Promise<[number, number]> {
  const times: [number[], number[]] = [[], []];
  const run = async (which: 0 | 1) => {
    const fn = which === 0 ? a : b;
    const started = performance.now();
    for (let i = 0; i < batch; i++) await fn();
    times[which].push((performance.now() - started) / batch);
  };
  for (let round = 0; round < rounds; round++) {
    if (round % 2 === 0) {
      await run(0);
      await run(1);
    } else {
      await run(1);
      await run(0);
    }
  }
  const median = (list: number[]) => list.sort((x, y) => x - y)[Math.floor(list.length / 2)]!;
  return [median(times[0]), median(times[1])];
}

describe("scenario 12: wrong keys", () => {
  it("answers every wrong admin key with 401 and no error, on every authenticated route", async () => {
    await using kp = await startTestDaemon(
      YAML.stringify({
        tokens_file: "tokens.txt",
        state_file: "state.db",
        server: { addr: "127.0.0.1:0", api_key: ADMIN_KEY },
      }),
      `a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\n${LEAK.id},${LEAK.token}\n`,
    );
    const app = kp.daemon.app;
    const statuses = new Set<number>();
    for (const wrong of wrongKeys(ADMIN_KEY)) {
      const ways: Array<Record<string, string>> = [
        { "x-api-key": wrong },
        { authorization: `Bearer ${wrong}` },
        { authorization: `Basic ${wrong}` },
        { authorization: wrong },
      ];
      for (const headers of ways) {
        for (const path of ["/status", "/take", "/events", "/pools"]) {
          let init: Headers;
          try {
            init = new Headers(headers);
          } catch {
            continue; // A value no client could send (fetch refuses it too).
          }
          statuses.add((await app.handle(new Request(`http://keypool${path}`, { headers: init }))).status);
        }
      }
    }
    expect([...statuses]).toEqual([401]);
    expect(
      (await app.handle(new Request("http://keypool/status", { headers: { "x-api-key": ADMIN_KEY } }))).status,
    ).toBe(200);
    expect(kp.logs.filter((line) => /"level":"error"/.test(line))).toEqual([]);
    expect(leaksOf([LEAK], kp.logs)).toEqual([]);
  });

  it("answers every wrong gateway client key with 401 and never calls the upstream", async () => {
    await using gw = await startGateway({
      handler: () => Response.json({ ok: true }),
      upstream: { client_keys: [CLIENT_KEY] },
    });
    const statuses = new Set<number>();
    for (const wrong of wrongKeys(CLIENT_KEY)) {
      const ways: Array<Record<string, string>> = [{ "x-api-key": wrong }, { authorization: `Bearer ${wrong}` }];
      for (const headers of ways) {
        const response = await fetch(`${gw.url}/v1/models`, { headers }).catch(() => undefined);
        if (response) statuses.add(response.status);
      }
    }
    expect([...statuses]).toEqual([401]);
    expect(gw.fake.calls.length).toBe(0);
    expect(gw.kp.logs.filter((line) => /"level":"error"/.test(line))).toEqual([]);
  }, 30_000);
});

describe("scenario 12: timing", () => {
  it("takes as long to refuse a key wrong in its first character as one wrong in its last (admin API)", async () => {
    await using kp = await startTestDaemon(
      YAML.stringify({
        tokens_file: "tokens.txt",
        state_file: "state.db",
        server: { addr: "127.0.0.1:0", api_key: ADMIN_KEY },
      }),
      "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\n",
    );
    const ask = (key: string) => () =>
      kp.daemon.app.handle(new Request("http://keypool/status", { headers: { "x-api-key": key } }));
    const wrongFirst = ask(`X${ADMIN_KEY.slice(1)}`);
    const wrongLast = ask(`${ADMIN_KEY.slice(0, -1)}X`);
    for (let i = 0; i < 500; i++) await Promise.all([wrongFirst(), wrongLast()]); // warm-up: JIT
    const [first, last] = await interleavedMedians(wrongFirst, wrongLast, 60, 200);
    console.log(`401 wrong-first ${(first * 1000).toFixed(1)} µs, wrong-last ${(last * 1000).toFixed(1)} µs`);
    expect(Math.abs(first - last) / Math.min(first, last)).toBeLessThan(0.25);
  });

  it("compares a 64 KiB secret in the same time whether it differs at the start or the end (matcher)", async () => {
    // A long key makes an early-exit comparison measurable: ~64 K byte compares vs one.
    const secret = "s".repeat(64 * 1024);
    const matches = createSecretMatcher([secret]);
    const wrongFirst = `x${secret.slice(1)}`;
    const wrongLast = `${secret.slice(0, -1)}x`;
    for (let i = 0; i < 200; i++) matches(wrongFirst) || matches(wrongLast);
    const [first, last] = await interleavedMedians(
      () => matches(wrongFirst),
      () => matches(wrongLast),
      30,
      20,
    );
    console.log(
      `64 KiB secret: wrong-first ${(first * 1000).toFixed(1)} µs, wrong-last ${(last * 1000).toFixed(1)} µs`,
    );
    expect(matches(secret)).toBe(true);
    expect(Math.abs(first - last) / Math.min(first, last)).toBeLessThan(0.25);
  });
});
