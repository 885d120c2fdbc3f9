import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { maskToken } from "../src/pool/mask";
import { startFakeUpstream, type FakeUpstream } from "./helpers/fake-upstream";

// Canaries: if either ever shows up in the CLI's output, a token leaked.
const GOOD = "sk-canary-good-7f3a9c2e51d04b86";
const BAD = "sk-canary-bad-0e6d2b94a17c58f3";
const MAIN = resolve(import.meta.dir, "../src/main.ts");

let upstream: FakeUpstream;
const dir = mkdtempSync(join(tmpdir(), "keypool-check-"));

beforeAll(async () => {
  upstream = await startFakeUpstream((req) =>
    req.headers.get("authorization") === `Bearer ${GOOD}` ? new Response("{}") : new Response("no", { status: 401 }),
  );
  writeFileSync(join(dir, "tokens.txt"), `good,${GOOD}\nbad,${BAD}\n`);
  writeFileSync(join(dir, "manual.txt"), `manual,sk-canary-manual-5b1e8d7c2a\n`);
});
afterAll(async () => {
  await upstream.stop();
  rmSync(dir, { recursive: true, force: true });
});

function writeConfig(name: string, yaml: string): string {
  const path = join(dir, name);
  writeFileSync(path, yaml);
  return path;
}

const singlePool = () =>
  writeConfig(
    "single.yaml",
    `tokens_file: tokens.txt
check:
  url: ${upstream.url}/v1/models
  headers:
    Authorization: "Bearer {token}"
  timeout_sec: 5
`,
  );

async function keypool(...args: string[]) {
  await using proc = Bun.spawn([process.execPath, MAIN, ...args], { cwd: dir, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  for (const canary of [GOOD, BAD, "sk-canary-manual-5b1e8d7c2a"]) expect(stdout + stderr).not.toContain(canary);
  return { stdout, stderr, code };
}

describe("keypool check", () => {
  it("prints a table of every key and exits 0 when enough are live", async () => {
    const { stdout, code } = await keypool("check", "-c", singlePool());
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID {4}STATUS {2}LATENCY {2}REASON$/);
    expect(lines[1]).toMatch(/^good {2}live {4}\d+ms\s+ok$/);
    expect(lines[2]).toMatch(/^bad {3}failed {2}\d+ms\s+HTTP 401$/);
    expect(lines[3]).toBe("1/2 live");
  });

  it("exits 1 when fewer than --min-live keys are live", async () => {
    const { code, stderr } = await keypool("check", "-c", singlePool(), "--min-live", "2");
    expect(code).toBe(1);
    expect(stderr).toContain("fewer than --min-live 2");
  });

  it("prints counts and masked keys with --json", async () => {
    const { stdout, code } = await keypool("check", "-c", singlePool(), "--json", "--concurrency", "1");
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual({
      live: 1,
      total: 2,
      unchecked: 0,
      min_live: 1,
      keys: [
        {
          pool: "default",
          id: "good",
          status: "live",
          latency_ms: expect.any(Number),
          reason: "ok",
          masked: maskToken(GOOD),
        },
        {
          pool: "default",
          id: "bad",
          status: "failed",
          latency_ms: expect.any(Number),
          reason: "HTTP 401",
          masked: maskToken(BAD),
        },
      ],
    });
  });

  it("adds a POOL column with several pools and counts only probed keys", async () => {
    const config = writeConfig(
      "pools.yaml",
      `pools:
  api:
    tokens_file: tokens.txt
    check:
      url: ${upstream.url}/v1/models
      headers: { Authorization: "Bearer {token}" }
  hand:
    tokens_file: manual.txt
`,
    );
    const { stdout, code } = await keypool("check", "-c", config);
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^POOL {2}ID {6}STATUS {5}LATENCY {2}REASON$/);
    expect(lines[3]).toMatch(/^hand {2}manual {2}unchecked {2}- {8}no check configured$/);
    expect(lines.at(-1)).toBe("1/2 live, 1 unchecked (pool has no check)");

    const only = await keypool("check", "-c", config, "--pool", "hand", "--json");
    expect(only.code).toBe(1);
    expect(JSON.parse(only.stdout)).toMatchObject({ live: 0, total: 0, unchecked: 1 });
  });

  it("exits 2 on a config error", async () => {
    const config = writeConfig("broken.yaml", "tokens_file: tokens.txt\nrotation: sideways\n");
    const { code, stderr } = await keypool("check", "-c", config);
    expect(code).toBe(2);
    expect(stderr).toContain("rotation");
  });

  it("exits 2 on a bad flag value or an unknown pool", async () => {
    const badNumber = await keypool("check", "-c", singlePool(), "--min-live", "lots");
    expect(badNumber).toMatchObject({ code: 2, stderr: expect.stringContaining("--min-live") });
    const badPool = await keypool("check", "-c", singlePool(), "--pool", "nope");
    expect(badPool).toMatchObject({ code: 2, stderr: expect.stringContaining('no pool named "nope"') });
  });
});
