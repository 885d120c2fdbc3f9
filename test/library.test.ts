import { describe, expect, it } from "bun:test";
import { closeSync, mkdirSync, openSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { deriveKeyId } from "../src/config/tokens-file";
import { outcomeOfError, outcomeOfValue } from "../src/lib/outcome";
import { DomainError, openPool } from "../src/lib/index";
import { jsonPost } from "./helpers/daemon";
import { spawnDaemon } from "./helpers/spawn-daemon";
import { tempDir } from "./helpers/temp-dir";

const A = "sk-lib-aaaaaaaaaaaaaaaaaaaaaaaa";
const B = "sk-lib-bbbbbbbbbbbbbbbbbbbbbbbb";

/** An error shaped like the openai and @anthropic-ai/sdk clients' APIError. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly headers: Record<string, string> = {},
  ) {
    super(`HTTP ${status}`);
  }
}

describe("openPool with keys in code", () => {
  it("takes, releases, reports and shows status over a state file", async () => {
    using dir = tempDir();
    await using pool = await openPool({ keys: [A, { id: "b", token: B, weight: 2 }], stateFile: dir.file("lib.db") });
    expect(pool.name).toBe("default");
    const lease = await pool.take();
    expect([A, B]).toContain(lease.token);
    expect(await pool.release(lease)).toMatchObject({ pool: "default", id: lease.id, state: "live" });
    expect(await pool.report({ token: B, ok: false, status: 429, retryAfterMs: 60_000 })).toMatchObject({
      id: "b",
      state: "cooling",
    });
    await expect(pool.report({ token: "sk-not-in-the-pool-000000000000", ok: true })).rejects.toThrow(
      'pool "default" has no key with that token',
    );
    const status = await pool.status();
    // Whichever key the take got is live now; b is cooling either way.
    expect([status.pool, status.total, status.counts.live + status.counts.unknown, status.counts.cooling]).toEqual([
      "default",
      2,
      1,
      1,
    ]);
    expect(status.keys.map((k) => [k.id, k.masked])).toEqual([
      ["b", "sk-…bbbb"],
      [deriveKeyId(A), "sk-…aaaa"],
    ]);
  });

  it("withKey releases with what happened and hands back the result or the error", async () => {
    using dir = tempDir();
    await using pool = await openPool({
      keys: [{ id: "a", token: A }],
      stateFile: dir.file("lib.db"),
      maxConcurrency: 1,
    });
    expect(await pool.withKey((token) => `used ${token.slice(0, 6)}`)).toBe("used sk-lib");

    const limited = new ApiError(429, { "retry-after": "30" });
    await expect(pool.withKey(() => Promise.reject(limited))).rejects.toBe(limited);
    const [key] = (await pool.status()).keys;
    expect([key!.state, key!.inFlight]).toEqual(["cooling", 0]);
    await expect(pool.take()).rejects.toThrow(DomainError);
  });
});

describe("how withKey reads an outcome", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  it.each([
    [
      "a 429 with retry-after",
      new ApiError(429, { "Retry-After": "7" }),
      { ok: false, status: 429, retryAfterMs: 7000, body: "HTTP 429" },
    ],
    ["a 401 (SDK error)", new ApiError(401), { ok: false, status: 401, body: "HTTP 401" }],
    [
      "a 503 from axios",
      Object.assign(new Error("x"), { response: { status: 503, headers: {} } }),
      { ok: false, status: 503, body: "x" },
    ],
    // The message carries the upstream's text: here it says the quota is spent, not that requests came too fast.
    [
      "a 429 for a spent quota (openai SDK)",
      Object.assign(new ApiError(429), {
        message: "429 You exceeded your current quota, please check your plan and billing details.",
      }),
      {
        ok: false,
        status: 429,
        body: "429 You exceeded your current quota, please check your plan and billing details.",
      },
    ],
    // The store classifies it: a plain 400 is the request's fault ("client") and costs the key nothing.
    ["a 400", new ApiError(400), { ok: false, status: 400, body: "HTTP 400" }],
    ["a 402: a spent quota", new ApiError(402), { ok: false, status: 402, body: "HTTP 402" }],
    ["a timeout", Object.assign(new Error("t"), { name: "TimeoutError" }), { ok: false, error: "timeout" }],
    [
      "a timeout made with an AbortController",
      Object.assign(new Error("request timed out"), { name: "AbortError" }),
      { ok: false, error: "timeout" },
    ],
    // The caller gave up: no fault of the key.
    ["an abort", new DOMException("This operation was aborted", "AbortError"), { ok: false, class: "client" as const }],
    ["anything else thrown", new TypeError("fetch failed"), { ok: false, error: "network" }],
  ])("a thrown %s", (_, error, expected) => {
    expect(outcomeOfError(error, now)).toEqual(expected);
  });

  it("a returned Response counts by its status, any other value is a success", () => {
    expect(outcomeOfValue(new Response("", { status: 429, headers: { "retry-after-ms": "1500" } }), now)).toEqual({
      ok: false,
      status: 429,
      retryAfterMs: 1500,
    });
    expect(outcomeOfValue(new Response("ok"), now)).toEqual({ ok: true, status: 200 });
    expect(outcomeOfValue({ choices: [] }, now)).toEqual({ ok: true });
  });
});

describe("openPool with a config", () => {
  it("uses the config's pool and state file, and says which pools exist when asked for another", async () => {
    using dir = tempDir();
    writeFileSync(dir.file("tokens.txt"), `a,${A}\n`);
    writeFileSync(
      dir.file("keypool.yaml"),
      "state_file: shared.db\npools:\n  openai:\n    tokens_file: tokens.txt\n  other:\n    tokens_file: tokens.txt\n",
    );
    await expect(openPool({ config: dir.file("keypool.yaml") })).rejects.toThrow(
      "several pools are configured; say which with { pool } (pools: openai, other)",
    );
    await expect(openPool({ config: dir.file("keypool.yaml"), pool: "nope" })).rejects.toThrow(
      'there is no pool "nope"',
    );
    await using pool = await openPool({ config: dir.file("keypool.yaml"), pool: "openai" });
    expect((await pool.take()).token).toBe(A);
  });
});

describe("the library next to a running daemon", () => {
  it("never hands out one exclusive lease twice across the daemon and two library processes", async () => {
    using dir = tempDir();
    const lockDir = dir.file("locks");
    mkdirSync(lockDir);
    const tokens = Array.from({ length: 4 }, (_, i) => `k${i},sk-lib-${i}-0000000000000000000000`).join("\n");
    writeFileSync(dir.file("tokens.txt"), tokens);
    const configPath = dir.file("keypool.yaml");
    writeFileSync(
      configPath,
      "tokens_file: tokens.txt\nstate_file: shared.db\ncooldown_sec: 0\nmax_concurrency: 1\nserver:\n  addr: 127.0.0.1:0\n",
    );
    await using daemon = await spawnDaemon(["serve", "-c", configPath]);

    const spawnHammer = () =>
      Bun.spawn([process.execPath, join(import.meta.dir, "helpers/library-hammer.ts"), configPath, lockDir, "1500"], {
        stdout: "pipe",
        stderr: "pipe",
      });
    const workers = [spawnHammer(), spawnHammer()];

    // Meanwhile this process takes through the daemon's HTTP API under the same lock rule.
    let httpTakes = 0;
    let httpViolations = 0;
    const viaHttp = (async () => {
      for (let attempt = 0; attempt < 2000 && httpTakes < 300; attempt++) {
        const response = await fetch(`${daemon.url}/take`);
        if (response.status === 503) continue;
        const lease = await response.json();
        httpTakes++;
        const lockPath = join(lockDir, lease.id);
        try {
          closeSync(openSync(lockPath, "wx"));
          unlinkSync(lockPath);
        } catch {
          httpViolations++;
        }
        await fetch(`${daemon.url}/release`, jsonPost({ lease: lease.lease, ok: true }));
      }
    })();

    const results = await Promise.all(
      workers.map(async (worker) => {
        const [out, err, code] = await Promise.all([
          new Response(worker.stdout).text(),
          new Response(worker.stderr).text(),
          worker.exited,
        ]);
        expect({ code, err }).toEqual({ code: 0, err: "" });
        return JSON.parse(out) as { takes: number; violations: number };
      }),
    );
    await viaHttp;
    expect(results.map((r) => [r.takes, r.violations])).toEqual([
      [1500, 0],
      [1500, 0],
    ]);
    expect(httpViolations).toBe(0);
    expect(httpTakes).toBeGreaterThan(0);
    const status = await (await fetch(`${daemon.url}/status`)).json();
    expect(status.keys.map((k: { in_flight: number }) => k.in_flight)).toEqual([0, 0, 0, 0]);
  });
});
