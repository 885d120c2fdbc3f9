/**
 * key-carousel (seed 002) users, switched to keypool's library: pools of key profiles per provider,
 * failures reported as the SDKs throw them, the rate-limit and billing ladders watched with an
 * injected clock, fallback to another provider's pool when one is exhausted, and persistence only
 * when asked for. See docs/migrate/key-carousel.md for what differs and why.
 */
import { describe, expect, it } from "bun:test";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../../src/config/load";
import { createDaemon } from "../../src/daemon/create-daemon";
import { DomainError, type KeyPool, type Lease, openPool } from "../../src/lib/index";
import { silentLogger } from "../../src/log";
import { ManualClock } from "../../src/pool/clock";
import { jsonPost } from "../helpers/daemon";
import { tempDir } from "../helpers/temp-dir";

const MIN = 60_000;
const HOUR = 60 * MIN;
const ANTHROPIC = ["sk-ant-carousel-1-aaaaaaaaaaaaaaaa", "sk-ant-carousel-2-bbbbbbbbbbbbbbbb"];
const OPENAI = "sk-oai-carousel-1-cccccccccccccccc";

/** Shaped like the openai and @anthropic-ai/sdk clients' APIError: a status, headers, the upstream's text. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    message = `${status} status code (no body)`,
  ) {
    super(message);
  }
}

/** One call through `withKey` that fails as `error` says; the pool rethrows it, as key-carousel's run() ends up doing. */
async function failOnce(pool: KeyPool, error: Error): Promise<Lease> {
  let used: Lease | undefined;
  await expect(
    pool.withKey((_token, lease) => {
      used = lease;
      throw error;
    }),
  ).rejects.toBe(error);
  return used!;
}

/** How long the key rests from now on, as /status shows it. */
async function restOf(pool: KeyPool, id: string, now: number, poolName?: string): Promise<number> {
  const key = (await pool.status(poolName)).keys.find((k) => k.id === id)!;
  expect(key.state).toBe("cooling");
  return key.until! - now;
}

/** A rung's rest is shortened at random by up to 10% (so keys that failed together come back apart), never lengthened. */
function expectRung(restMs: number, rungMs: number): void {
  expect(restMs).toBeLessThanOrEqual(rungMs);
  expect(restMs).toBeGreaterThanOrEqual(Math.floor(rungMs * 0.9));
}

describe("cooldown ladders, as key-carousel documents them", () => {
  it.each([
    ["a rate limit (429)", () => new ApiError(429), [1 * MIN, 5 * MIN, 25 * MIN, 60 * MIN, 60 * MIN]],
    ["a billing error (402)", () => new ApiError(402), [5 * HOUR, 10 * HOUR, 20 * HOUR, 24 * HOUR, 24 * HOUR]],
    [
      "a spent quota sent as 429 (openai SDK)",
      () => new ApiError(429, "429 You exceeded your current quota, please check your plan and billing details."),
      [5 * HOUR, 10 * HOUR, 20 * HOUR, 24 * HOUR],
    ],
  ] as const)("%s rests the key 1 rung further each time it fails again", async (_, error, ladder) => {
    const clock = new ManualClock();
    await using pool = await openPool({ keys: [{ id: "anthropic-1", token: ANTHROPIC[0]! }], clock });
    const rests: number[] = [];
    for (const rung of ladder) {
      await failOnce(pool, error());
      const rest = await restOf(pool, "anthropic-1", clock.now());
      expectRung(rest, rung);
      rests.push(rest);
      // Still resting a moment before its time; usable again once it has passed.
      clock.advance(rest - 1);
      await expect(pool.take()).rejects.toMatchObject({ code: "NO_KEY_AVAILABLE" });
      clock.advance(1);
    }
    expect(rests).toHaveLength(ladder.length);
  });

  it("starts the ladder again after a success", async () => {
    const clock = new ManualClock();
    await using pool = await openPool({ keys: [{ id: "anthropic-1", token: ANTHROPIC[0]! }], clock });
    await failOnce(pool, new ApiError(429));
    clock.advance(await restOf(pool, "anthropic-1", clock.now()));
    await failOnce(pool, new ApiError(429));
    clock.advance(await restOf(pool, "anthropic-1", clock.now()));
    expect(await pool.withKey(() => "answered")).toBe("answered");
    await failOnce(pool, new ApiError(429));
    expectRung(await restOf(pool, "anthropic-1", clock.now()), 1 * MIN);
  });

  it("takes the upstream's Retry-After for the first rung instead of the ladder's", async () => {
    const clock = new ManualClock();
    await using pool = await openPool({ keys: [{ id: "anthropic-1", token: ANTHROPIC[0]! }], clock });
    await failOnce(pool, Object.assign(new ApiError(429), { headers: { "retry-after": "17" } }));
    expect(await restOf(pool, "anthropic-1", clock.now())).toBe(17_000);
  });

  it("lets a pool in code change a ladder, like key-carousel's cooldowns option", async () => {
    const clock = new ManualClock();
    await using pool = await openPool({
      keys: [{ id: "anthropic-1", token: ANTHROPIC[0]! }],
      clock,
      // maxRateLimitCooldownMs: 600_000 and billingBackoffMs: 3_600_000, in keypool's words.
      backoff: { rate_limit: { maxSec: 600 }, quota: { baseSec: 3600 } },
    });
    for (let i = 0; i < 3; i++) {
      await failOnce(pool, new ApiError(429));
      clock.advance(await restOf(pool, "anthropic-1", clock.now()));
    }
    await failOnce(pool, new ApiError(429));
    expectRung(await restOf(pool, "anthropic-1", clock.now()), 10 * MIN);
  });
});

describe("what a failure means for the key", () => {
  it("quarantines a key on 403 by default, and rests it on the billing ladder with key-carousel's classify rule", async () => {
    const clock = new ManualClock();
    await using strict = await openPool({ keys: [{ id: "k", token: ANTHROPIC[0]! }], clock });
    await failOnce(strict, new ApiError(403));
    expect((await strict.status()).keys[0]).toMatchObject({ state: "quarantined", until: clock.now() + 300_000 });

    await using seedLike = await openPool({
      keys: [{ id: "k", token: ANTHROPIC[0]! }],
      clock,
      classify: [{ status: [403], class: "quota" }],
    });
    await failOnce(seedLike, new ApiError(403));
    expectRung(await restOf(seedLike, "k", clock.now()), 5 * HOUR);
  });

  it("costs the key nothing when the caller aborts, or the request itself was wrong (400, 404)", async () => {
    const clock = new ManualClock();
    await using pool = await openPool({ keys: [{ id: "k", token: ANTHROPIC[0]! }], clock });
    for (const error of [
      new DOMException("This operation was aborted", "AbortError"),
      new ApiError(400),
      new ApiError(404),
    ])
      await failOnce(pool, error);
    expect((await pool.take()).id).toBe("k");
  });
});

describe("waiting for a key, as run() waits up to maxWaitMs", () => {
  it("hands a key given back to the caller waiting in line, and lets a caller leave the line", async () => {
    await using pool = await openPool({ keys: [{ id: "k", token: ANTHROPIC[0]! }], maxConcurrency: 1 });
    const held = await pool.take();
    const waiting = pool.take({ waitMs: 60_000 });
    const leaving = new AbortController();
    const gaveUp = pool.take({ waitMs: 60_000, signal: leaving.signal });
    leaving.abort(new Error("caller left"));
    await expect(gaveUp).rejects.toThrow("caller left");
    await pool.release(held);
    expect((await waiting).id).toBe("k");
    await expect(pool.take()).rejects.toMatchObject({ code: "NO_KEY_AVAILABLE" });
  });
});

describe("fallback to another provider's pool", () => {
  const pools = {
    anthropic: {
      keys: [
        { id: "anthropic-1", token: ANTHROPIC[0]! },
        { id: "anthropic-2", token: ANTHROPIC[1]! },
      ],
      fallback: ["openai"],
    },
    openai: { keys: [{ id: "openai-1", token: OPENAI }], modelMap: { "claude-sonnet-4": "gpt-4o" } },
  };

  it("serves from the fallback pool once every key of the pool rests, and from the pool again when one is back", async () => {
    const clock = new ManualClock();
    await using pool = await openPool({ pools, pool: "anthropic", clock });
    expect(pool.chain).toEqual(["anthropic", "openai"]);
    await failOnce(pool, new ApiError(429));
    await failOnce(pool, new ApiError(429));

    const lease = await pool.take();
    expect([lease.pool, lease.id, lease.token]).toEqual(["openai", "openai-1", OPENAI]);
    // The fallback provider's name for the model, as the gateway would rewrite it.
    expect(pool.modelFor(lease, "claude-sonnet-4")).toBe("gpt-4o");
    expect(pool.modelFor(lease, "claude-haiku")).toBe("claude-haiku");
    await pool.release(lease, { ok: false, status: 402 });

    // Every provider exhausted: the error says when the soonest key is back (a rate limit, not the 5 h billing rest).
    const exhausted = await pool.take().catch((error: DomainError) => error);
    expect(exhausted).toBeInstanceOf(DomainError);
    expect(exhausted).toMatchObject({
      code: "NO_KEY_AVAILABLE",
      message: expect.stringContaining("or its fallbacks (openai)"),
    });
    expectRung((exhausted as DomainError).retryAfterMs!, 1 * MIN);

    clock.advance((exhausted as DomainError).retryAfterMs!);
    const back = await pool.take();
    expect(back.pool).toBe("anthropic");
    expect(pool.modelFor(back, "claude-sonnet-4")).toBe("claude-sonnet-4");
    expect((await pool.status("openai")).counts.cooling).toBe(1);
  });

  it("reports a fallback key by its token, as key-carousel's markFailure names a profile", async () => {
    const clock = new ManualClock();
    await using pool = await openPool({ pools, pool: "anthropic", clock });
    expect(await pool.report({ token: OPENAI, ok: false, status: 429 })).toMatchObject({
      pool: "openai",
      id: "openai-1",
      state: "cooling",
    });
    expect(await pool.report({ id: "anthropic-2", ok: false, status: 429 })).toMatchObject({
      pool: "anthropic",
      id: "anthropic-2",
    });
  });

  it("refuses a fallback that names no pool, or loops back, as a config file would", async () => {
    await expect(openPool({ pools: { anthropic: { keys: [ANTHROPIC[0]!], fallback: ["gemini"] } } })).rejects.toThrow(
      "pools.anthropic.fallback.0",
    );
    await expect(
      openPool({
        pools: { a: { keys: [ANTHROPIC[0]!], fallback: ["b"] }, b: { keys: [OPENAI], fallback: ["a"] } },
        pool: "a",
      }),
    ).rejects.toThrow("fallback cycle a → b → a");
  });

  it("tries the pools in the order the daemon's /take does, given the same config", async () => {
    using dir = tempDir();
    // a falls back to b then c; b to d: depth first, the chain is a, b, d, c.
    const yaml = `cooldown_sec: 0
server: { addr: "127.0.0.1:0" }
pools:
  a: { tokens_file: a.txt, fallback: [b, c] }
  b: { tokens_file: b.txt, fallback: [d] }
  c: { tokens_file: c.txt }
  d: { tokens_file: d.txt }
`;
    for (const name of ["a", "b", "c", "d"])
      writeFileSync(dir.file(`${name}.txt`), `${name}1,sk-chain-${name}-000000000000000000\n`);
    writeFileSync(dir.file("daemon.yaml"), `${yaml}state_file: daemon.db\n`);
    writeFileSync(dir.file("library.yaml"), `${yaml}state_file: library.db\n`);
    const daemon = await createDaemon(loadConfig(dir.file("daemon.yaml")), {
      logger: silentLogger,
      port: 0,
      autoCheck: false,
    });
    await daemon.start();
    try {
      await using pool = await openPool({ config: dir.file("library.yaml"), pool: "a" });
      const served: Array<[string, string]> = [];
      for (const resting of ["a", "b", "d", "c"]) {
        const viaDaemon = (await (await fetch(`${daemon.url}/take?pool=a`)).json()) as { pool: string; lease: string };
        const viaLibrary = await pool.take();
        served.push([viaDaemon.pool, viaLibrary.pool]);
        // Rest the pool that just served, in both, so the next take moves on.
        await fetch(`${daemon.url}/release`, jsonPost({ lease: viaDaemon.lease, ok: false, status: 429 }));
        await pool.release(viaLibrary, { ok: false, status: 429 });
        expect(viaLibrary.pool).toBe(resting);
      }
      expect(served).toEqual([
        ["a", "a"],
        ["b", "b"],
        ["d", "d"],
        ["c", "c"],
      ]);
      expect((await fetch(`${daemon.url}/take?pool=a`)).status).toBe(503);
      await expect(pool.take()).rejects.toMatchObject({ code: "NO_KEY_AVAILABLE" });
    } finally {
      await daemon.stop();
    }
  });
});

describe("persistence is opt-in", () => {
  it("keeps state in memory without a state file: nothing is written, and a restart starts fresh", async () => {
    using dir = tempDir();
    // Another process, in a directory of its own, as a user's program runs: its working directory must stay empty.
    const script = `
      import { openPool } from ${JSON.stringify(join(import.meta.dir, "../../src/lib/index.ts"))};
      const pool = await openPool({ keys: [${JSON.stringify(ANTHROPIC[0])}] });
      await pool.report({ token: ${JSON.stringify(ANTHROPIC[0])}, ok: false, status: 429 });
      const status = await pool.status();
      await pool.close();
      const again = await openPool({ keys: [${JSON.stringify(ANTHROPIC[0])}] });
      console.log(JSON.stringify([status.counts.cooling, (await again.status()).counts.cooling]));
      await again.close();
    `;
    using code = tempDir("keypool-carousel-program-");
    const program = code.file("program.ts");
    writeFileSync(program, script);
    const env = { ...process.env };
    delete env.KEYPOOL_STATE_FILE;
    delete env.KEYPOOL_DATABASE_URL;
    const run = Bun.spawnSync([process.execPath, program], { cwd: dir.path, env, stdout: "pipe", stderr: "pipe" });
    expect({ code: run.exitCode, stderr: run.stderr.toString(), out: run.stdout.toString().trim() }).toEqual({
      code: 0,
      stderr: "",
      out: "[1,0]",
    });
    expect(readdirSync(dir.path)).toEqual([]);
  });

  it("keeps two pools opened in memory apart, and lets two opened on one state file see each other's cooldowns", async () => {
    using dir = tempDir();
    const keys = [{ id: "k", token: ANTHROPIC[0]! }];
    await using first = await openPool({ keys });
    await using second = await openPool({ keys });
    await first.report({ id: "k", ok: false, status: 429 });
    expect((await second.status()).counts.cooling).toBe(0);

    await using shared = await openPool({ keys, stateFile: dir.file("shared.db") });
    await using alsoShared = await openPool({ keys, stateFile: dir.file("shared.db") });
    await shared.report({ id: "k", ok: false, status: 429 });
    expect((await alsoShared.status()).counts.cooling).toBe(1);
  });

  it("with a state file, a restart finds the cooldowns where they were", async () => {
    using dir = tempDir();
    const clock = new ManualClock();
    const open = () =>
      openPool({ keys: [{ id: "anthropic-1", token: ANTHROPIC[0]! }], stateFile: dir.file("carousel.db"), clock });
    const first = await open();
    await failOnce(first, new ApiError(402));
    const until = (await first.status()).keys[0]!.until;
    await first.close();

    clock.advance(HOUR);
    await using second = await open();
    const key = (await second.status()).keys[0]!;
    expect([key.state, key.until, key.rung]).toEqual(["cooling", until, 1]);
    // And the next billing failure climbs from there: 10 h, not 5 h again.
    clock.set(until!);
    await failOnce(second, new ApiError(402));
    expectRung(await restOf(second, "anthropic-1", clock.now()), 10 * HOUR);
  });
});
