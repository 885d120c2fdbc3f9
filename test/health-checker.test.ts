import { describe, expect, it } from "bun:test";
import { existsSync } from "node:fs";
import { referenceTokenInScript } from "../src/config/_shell-script";
import type { CommandCheckConfig, Config, HttpCheckConfig } from "../src/config/types";
import { createDaemon } from "../src/daemon/create-daemon";
import { silentLogger } from "../src/log";
import { ManualClock } from "../src/pool/clock";
import { CHECK_JITTER, nextCheckAt } from "../src/pool/key-state";
import type { KeyInput } from "../src/store/types";
import { type FakeHandler, deadUrl, neverAnswer, startFakeUpstream } from "./helpers/fake-upstream";
import { integrityOf, openHealthPool, seededRandom } from "./helpers/health-pool";
import { tempDir } from "./helpers/temp-dir";

const MINUTE = 60_000;

function httpCheck(url: string, over: Partial<HttpCheckConfig> = {}): HttpCheckConfig {
  return {
    kind: "http",
    url,
    method: "GET",
    headers: { authorization: "Bearer {token}" },
    successStatus: [200],
    timeoutSec: 5,
    ...over,
  };
}

function keys(n: number, prefix = "k"): KeyInput[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `${prefix}${i}`,
    token: `sk-${prefix}${i}-0123456789abcdef`,
    weight: 1,
  }));
}

/** Answers each request by the token in its Authorization header; tokens not listed get 200. */
function byToken(answers: Record<string, () => Response>): FakeHandler {
  return (_req, call) => {
    const token = call.headers.authorization?.replace(/^Bearer /, "") ?? "";
    return answers[token]?.() ?? new Response("ok");
  };
}

describe("checker schedule", () => {
  it("probes never-checked keys at once and records status, latency and the next check", async () => {
    await using upstream = await startFakeUpstream();
    await using h = await openHealthPool({ keys: keys(2), check: httpCheck(upstream.url) });
    const now = h.clock.now();
    await h.checker.tick();

    expect(upstream.calls).toHaveLength(2);
    const rows = await h.status();
    for (const row of Object.values(rows)) {
      expect(row).toMatchObject({
        state: "live",
        lastCheck: now,
        lastCheckStatus: 200,
        consecutiveFailures: 0,
        nextCheckAt: now + 300_000,
      });
      expect(row.lastCheckLatencyMs).toBeGreaterThanOrEqual(0);
    }

    // Nothing is due again until the interval has passed.
    h.clock.advance(4 * MINUTE);
    await h.checker.tick();
    expect(upstream.calls).toHaveLength(2);
    h.clock.advance(2 * MINUTE);
    await h.checker.tick();
    expect(upstream.calls).toHaveLength(4);
  });

  it("spreads checks over ±10% of recheck_interval_sec", async () => {
    await using upstream = await startFakeUpstream();
    await using h = await openHealthPool({ keys: keys(40), check: httpCheck(upstream.url), random: seededRandom() });
    const now = h.clock.now();
    await h.checker.tick();

    const delays = Object.values(await h.status()).map((row) => row.nextCheckAt! - now);
    const [min, max] = [Math.min(...delays), Math.max(...delays)];
    expect(min).toBeGreaterThanOrEqual(300_000 * (1 - CHECK_JITTER));
    expect(max).toBeLessThanOrEqual(300_000 * (1 + CHECK_JITTER));
    // Spread across most of the window, not bunched: keys must not march in lockstep.
    expect(max - min).toBeGreaterThan(45_000);
    expect(new Set(delays).size).toBeGreaterThan(35);
  });

  it("jitters between exactly 0.9 and 1.1 times the interval", () => {
    const schedule = { recheckIntervalSec: 100, reviveIntervalSec: 10 };
    expect(nextCheckAt("live", null, schedule, 0, () => 0)).toBe(90_000);
    expect(nextCheckAt("live", null, schedule, 0, () => 0.999_999)).toBe(110_000);
    expect(nextCheckAt("dead", null, schedule, 0, () => 0.5)).toBe(10_000);
    // A future expiry pulls the check forward; one already inside the window is ignored.
    const refreshing = { ...schedule, refreshAheadSec: 60 };
    expect(nextCheckAt("live", 80_000, refreshing, 0, () => 0.5)).toBe(20_000);
    expect(nextCheckAt("live", 30_000, refreshing, 0, () => 0.5)).toBe(100_000);
  });

  it("never runs more than check.concurrency probes at once, even across overlapping ticks", async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    await using upstream = await startFakeUpstream(async () => {
      await gate;
      return new Response("ok");
    });
    await using h = await openHealthPool({ keys: keys(12), check: httpCheck(upstream.url, { concurrency: 3 }) });

    const first = h.checker.tick();
    await upstream.wait(3);
    // Every slot is taken, so a second pass finds nothing to start and returns at once.
    await h.checker.tick();
    expect(upstream.calls).toHaveLength(3);
    expect(upstream.inFlight).toBe(3);

    open();
    await first;
    expect(upstream.calls).toHaveLength(12);
    expect(upstream.maxInFlight).toBe(3);
  });
});

describe("checker verdicts", () => {
  it("quarantines on 401 and revives on revive_interval_sec once the key works again", async () => {
    const [a, b] = keys(2);
    let rejected = new Set([a!.token, b!.token]);
    await using upstream = await startFakeUpstream((_req, call) =>
      rejected.has(call.headers.authorization!.slice(7)) ? new Response("no", { status: 401 }) : new Response("ok"),
    );
    await using h = await openHealthPool({ keys: [a!, b!], check: httpCheck(upstream.url, { reviveIntervalSec: 60 }) });

    await h.checker.tick();
    // Every key failed: the pool is empty, but the checker keeps probing it.
    expect(Object.values(await h.status()).map((r) => [r.state, r.reason])).toEqual([
      ["quarantined", "health check: HTTP 401"],
      ["quarantined", "health check: HTTP 401"],
    ]);

    rejected = new Set([b!.token]);
    h.clock.advance(50_000); // inside the revive interval's jitter window, so not yet due
    await h.checker.tick();
    expect(upstream.calls).toHaveLength(2);

    h.clock.advance(20_000);
    await h.checker.tick();
    expect(upstream.calls).toHaveLength(4);
    const rows = await h.status();
    expect(rows[a!.id]).toMatchObject({ state: "live", reason: "revived by health check", consecutiveFailures: 0 });
    expect(rows[b!.id]).toMatchObject({ state: "quarantined", consecutiveFailures: 2 });
    expect((await h.store.take("default")).id).toBe(a!.id);
  });

  it("cools a rate-limited key until Retry-After", async () => {
    await using upstream = await startFakeUpstream(
      () => new Response("slow", { status: 429, headers: { "retry-after": "120" } }),
    );
    await using h = await openHealthPool({ keys: keys(1), check: httpCheck(upstream.url) });
    await h.checker.tick();
    expect((await h.status()).k0).toMatchObject({
      state: "cooling",
      until: h.clock.now() + 120_000,
      reason: "health check: HTTP 429",
      consecutiveFailures: 0,
    });
  });

  it("keeps a live key through network errors until failures_to_dead in a row, then calls it dead", async () => {
    await using upstream = await startFakeUpstream();
    const check = httpCheck(upstream.url, { failuresToDead: 3 });
    await using h = await openHealthPool({ keys: keys(1), check });
    await h.checker.tick();
    expect((await h.status()).k0!.state).toBe("live");

    check.url = await deadUrl();
    const seen: Array<[string, number]> = [];
    for (let i = 0; i < 3; i++) {
      h.clock.advance(6 * MINUTE);
      await h.checker.tick();
      const row = (await h.status()).k0!;
      seen.push([row.state, row.consecutiveFailures]);
    }
    expect(seen).toEqual([
      ["live", 1],
      ["live", 2],
      ["dead", 3],
    ]);
    expect((await h.status()).k0!.reason).toBe("health check failed 3 times: connection refused");
  });

  it("re-probes a key a caller reported as rejected on the revive schedule, not the routine one", async () => {
    await using upstream = await startFakeUpstream();
    await using h = await openHealthPool({ keys: keys(1), check: httpCheck(upstream.url) });
    await h.checker.tick();
    const lease = await h.store.take("default");
    await h.store.release({ lease: lease.lease }, { ok: false, status: 401 });
    expect((await h.status()).k0!.nextCheckAt).toBe(h.clock.now() + 60_000);

    h.clock.advance(61_000);
    await h.checker.tick();
    expect((await h.status()).k0).toMatchObject({ state: "live", reason: "revived by health check" });
  });

  it("never probes disabled keys", async () => {
    await using upstream = await startFakeUpstream();
    await using h = await openHealthPool({ keys: keys(1), check: httpCheck(upstream.url) });
    // No store method disables keys yet; the row is what an operator's switch would leave.
    const { Database } = await import("bun:sqlite");
    const db = new Database(h.dbPath);
    db.run("UPDATE keys SET health = 'disabled', takeable = 0");
    db.close();
    await h.checker.tick();
    expect(upstream.calls).toHaveLength(0);
  });
});

describe("command probes from the checker", () => {
  it.each([
    ["as a shell line's {token}", ["/bin/sh", "-c", referenceTokenInScript("printf %s {token}") as string]],
    ["in KEYPOOL_TOKEN, quoted in a script", ["sh", "-c", 'printf "%s" "$KEYPOOL_TOKEN"']],
  ])("passes a token full of shell syntax %s without running any of it", async (_how, cmd) => {
    using dir = tempDir("keypool-cmd-");
    const marker = dir.file("pwned");
    const token = `$(touch ${marker});id\`touch ${marker}\``;
    const check: CommandCheckConfig = { kind: "command", cmd, successOutput: token, timeoutSec: 5 };
    await using h = await openHealthPool({ keys: [{ id: "evil", token, weight: 1 }], check });
    await h.checker.tick();
    expect(existsSync(marker)).toBe(false);
    // Live only if the output was the token, verbatim: nothing was expanded.
    expect((await h.status()).evil).toMatchObject({ state: "live", reason: null });
  });
});

describe("checker stop()", () => {
  it("aborts an HTTP probe in flight, records nothing for it, and leaves the db consistent", async () => {
    await using upstream = await startFakeUpstream(neverAnswer);
    await using h = await openHealthPool({ keys: keys(1), check: httpCheck(upstream.url, { timeoutSec: 30 }) });
    const pass = h.checker.tick();
    await upstream.wait(1);

    const started = performance.now();
    await h.checker.stop();
    expect(performance.now() - started).toBeLessThan(2000);
    await pass;

    // An aborted probe says nothing about the key: no failure is counted.
    expect((await h.status()).k0).toMatchObject({ state: "unknown", lastCheck: null, consecutiveFailures: 0 });
    await h.close();
    expect(integrityOf(h.dbPath)).toBe("ok");
  });

  it("kills a command probe in flight", async () => {
    await using upstream = await startFakeUpstream();
    // The command reports its pid to the fake, then would run forever.
    const script = `await fetch(${JSON.stringify(upstream.url)} + "/?pid=" + process.pid); setInterval(() => {}, 1 << 30);`;
    const check: CommandCheckConfig = { kind: "command", cmd: [process.execPath, "-e", script], timeoutSec: 30 };
    await using h = await openHealthPool({ keys: keys(1), check });
    const pass = h.checker.tick();
    await upstream.wait(1);
    const pid = Number(new URL(upstream.calls[0]!.path, upstream.url).searchParams.get("pid"));

    const started = performance.now();
    await h.checker.stop();
    expect(performance.now() - started).toBeLessThan(2000);
    await pass;
    expect(() => process.kill(pid, 0)).toThrow();
    await h.close();
    expect(integrityOf(h.dbPath)).toBe("ok");
  });
});

describe("daemon wiring", () => {
  it("shows check results in /status and stops the checker before the store", async () => {
    await using upstream = await startFakeUpstream(
      byToken({ "sk-k1-0123456789abcdef": () => new Response("", { status: 401 }) }),
    );
    using dir = tempDir();
    const clock = new ManualClock();
    const config: Config = {
      server: { host: "127.0.0.1", port: 0 },
      stateFile: dir.file("state.db"),
      pools: {
        default: {
          name: "default",
          keys: keys(2),
          rotation: "lru",
          cooldownSec: 0,
          recheckIntervalSec: 300,
          leaseTtlSec: 300,
          check: httpCheck(upstream.url),
        },
      },
    };
    const daemon = await createDaemon(config, {
      clock,
      logger: silentLogger,
      port: 0,
      random: () => 0.5,
      autoCheck: false,
    });
    await daemon.start();
    try {
      await daemon.checker.tick();
      const body = (await (await daemon.app.handle(new Request("http://keypool/status"))).json()) as {
        keys: Array<Record<string, unknown>>;
      };
      const next = new Date(clock.now() + 300_000).toISOString();
      const nextRevive = new Date(clock.now() + 60_000).toISOString();
      expect(
        body.keys.map(({ id, state, last_check_status, consecutive_failures, next_check_at }) => ({
          id,
          state,
          last_check_status,
          consecutive_failures,
          next_check_at,
        })),
      ).toEqual([
        { id: "k0", state: "live", last_check_status: 200, consecutive_failures: 0, next_check_at: next },
        { id: "k1", state: "quarantined", last_check_status: 401, consecutive_failures: 1, next_check_at: nextRevive },
      ]);
      expect(body.keys[0]!.last_check_latency_ms).toEqual(expect.any(Number));
    } finally {
      await daemon.stop();
    }
    expect(integrityOf(config.stateFile)).toBe("ok");
  });
});
