import { describe, expect, it } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startFakeUpstream } from "../helpers/fake-upstream";
import { POSTGRES_URL, announceSkip, freshSchema } from "../helpers/postgres";
import { spawnDaemon } from "../helpers/spawn-daemon";
import { tempDir } from "../helpers/temp-dir";

announceSkip("test/store/postgres-instances.test.ts");

const TOKENS = {
  a: "sk-test-aaaaaaaaaaaaaaaaaaaaaaaa",
  b: "sk-test-bbbbbbbbbbbbbbbbbbbbbbbb",
  c: "sk-test-cccccccccccccccccccccccc",
};
const HAMMER = join(import.meta.dir, "../helpers/lease-hammer.ts");

describe.skipIf(!POSTGRES_URL)("several keypool instances on one PostgreSQL database", () => {
  it("share key state: a 401 seen through one gateway quarantines the key for both", async () => {
    await using schema = await freshSchema();
    // Key b's token is revoked upstream; a and c work.
    await using upstream = await startFakeUpstream((_, call) =>
      call.headers.authorization === `Bearer ${TOKENS.b}`
        ? Response.json({ error: { message: "invalid api key" } }, { status: 401 })
        : Response.json({ ok: true }),
    );
    using dir = tempDir();
    writeFileSync(
      dir.file("tokens.txt"),
      Object.entries(TOKENS)
        .map(([id, token]) => `${id},${token}\n`)
        .join(""),
    );
    writeFileSync(
      dir.file("keypool.yaml"),
      [
        "tokens_file: tokens.txt",
        "rotation: round_robin",
        "cooldown_sec: 0",
        "server:\n  addr: 127.0.0.1:0",
        `store:\n  postgres:\n    url: "${schema.url}"`,
        `upstream:\n  enabled: true\n  listen: 127.0.0.1:0\n  base_url: ${upstream.url}`,
      ].join("\n"),
    );
    const args = ["serve", "-c", dir.file("keypool.yaml")];
    await using first = await spawnDaemon(args, { NO_COLOR: "1" });
    await using second = await spawnDaemon(args, { NO_COLOR: "1" });
    const gateways = await Promise.all(
      [first, second].map(async (d) => JSON.parse(await d.waitForLog(/keypool gateway listening/)).url as string),
    );
    // The log names the database without its password, and never the URL's parameters.
    expect(first.log()).toContain("postgres://postgres@127.0.0.1");
    expect(first.log()).not.toContain("search_path");

    const answers: number[] = [];
    for (let i = 0; i < 12; i++) {
      const response = await fetch(`${gateways[i % 2]}/v1/models`);
      answers.push(response.status);
      await response.text();
    }
    // The gateway retried the one 401 on another key: every client got its answer.
    expect(answers).toEqual(Array(12).fill(200));
    const usedB = upstream.calls.filter((call) => call.headers.authorization === `Bearer ${TOKENS.b}`);
    expect(usedB.length).toBe(1);
    const states = await Promise.all(
      [first, second].map(async (d) => {
        const body = (await (await fetch(`${d.url}/status`)).json()) as { keys: Array<{ id: string; state: string }> };
        return Object.fromEntries(body.keys.map((k) => [k.id, k.state]));
      }),
    );
    expect(states[0]).toMatchObject({ b: "quarantined" });
    expect(states[1]).toEqual(states[0]!);
  });

  it("never hand out one exclusive lease twice across 2 × 5,000 concurrent takes", async () => {
    await using schema = await freshSchema();
    using dir = tempDir();
    const lockDir = dir.file("locks");
    mkdirSync(lockDir);
    const spawnHammer = () =>
      Bun.spawn([process.execPath, HAMMER, schema.url, lockDir, "5000", "2"], { stdout: "pipe", stderr: "pipe" });
    const workers = [spawnHammer(), spawnHammer()];
    const results = await Promise.all(
      workers.map(async (worker) => {
        const [out, err, code] = await Promise.all([
          new Response(worker.stdout).text(),
          new Response(worker.stderr).text(),
          worker.exited,
        ]);
        expect({ code, err }).toEqual({ code: 0, err: "" });
        return JSON.parse(out) as { takes: number; violations: number; waits: number };
      }),
    );
    expect(results.map((r) => [r.takes, r.violations])).toEqual([
      [5000, 0],
      [5000, 0],
    ]);
  }, 60_000);
});
