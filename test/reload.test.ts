import { describe, expect, it } from "bun:test";
import { renameSync, writeFileSync } from "node:fs";
import { jsonPost, startTestDaemon } from "./helpers/daemon";
import { spawnDaemon } from "./helpers/spawn-daemon";
import { tempDir } from "./helpers/temp-dir";

const CONFIG = "tokens_file: tokens.txt\nstate_file: state.db\ncooldown_sec: 0\nserver:\n  addr: 127.0.0.1:0\n";
const TWO_KEYS = "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\nb,sk-test-bbbbbbbbbbbbbbbbbbbbbbbb\n";
const THREE_KEYS = `${TWO_KEYS}c,sk-test-cccccccccccccccccccccccc\n`;

const idsOf = async (url: string) =>
  (await (await fetch(`${url}/status`)).json()).keys.map((k: { id: string }) => k.id);

/** Replaces a file the way editors save: write a new file beside it, rename it over the old one. */
function saveLikeAnEditor(path: string, text: string): void {
  writeFileSync(`${path}.swp`, text);
  renameSync(`${path}.swp`, path);
}

describe("POST /reload", () => {
  it("rejects an invalid file, logs why, and keeps serving the running config", async () => {
    await using kp = await startTestDaemon(CONFIG, TWO_KEYS);
    await kp.fetch("/release", jsonPost({ id: "a", ok: false, status: 401 }));
    writeFileSync(kp.configPath, `${CONFIG}rotation: fastest\n`);
    const response = await kp.fetch("/reload", { method: "POST" });
    expect(response.status).toBe(400);
    expect((await response.json()).error.code).toBe("INVALID_CONFIG");
    expect(
      kp.logs.some(
        (line) => line.includes('"msg":"reload rejected; keeping the running config"') && line.includes("fastest"),
      ),
    ).toBe(true);
    const taken = await (await kp.fetch("/take")).json();
    expect(taken.id).toBe("b");

    // A valid file is applied, and what was known about each key is kept.
    writeFileSync(kp.configPath, CONFIG);
    writeFileSync(kp.dir.file("tokens.txt"), THREE_KEYS);
    expect(await (await kp.fetch("/reload", { method: "POST" })).json()).toEqual({
      ok: true,
      pools: { default: { added: 1, updated: 0, removed: 0, kept: 2 } },
    });
    const status = await (await kp.fetch("/status")).json();
    expect(status.keys.map((k: { id: string; state: string }) => [k.id, k.state])).toEqual([
      ["a", "quarantined"],
      ["b", "unknown"],
      ["c", "unknown"],
    ]);
  });
});

describe("SIGHUP", () => {
  it("reloads the config and tokens files; an invalid one is rejected and the daemon keeps serving", async () => {
    using dir = tempDir();
    writeFileSync(dir.file("keypool.yaml"), CONFIG);
    writeFileSync(dir.file("tokens.txt"), TWO_KEYS);
    await using kp = await spawnDaemon(["serve", "-c", dir.file("keypool.yaml")]);

    writeFileSync(dir.file("tokens.txt"), THREE_KEYS);
    kp.proc.kill("SIGHUP");
    expect(await kp.waitForLog(/"msg":"config reloaded"/)).toContain(
      '"trigger":"SIGHUP","pools":{"default":{"added":1',
    );
    expect(await idsOf(kp.url)).toEqual(["a", "b", "c"]);

    writeFileSync(dir.file("tokens.txt"), "a,has a space\n");
    kp.proc.kill("SIGHUP");
    expect(await kp.waitForLog(/"msg":"reload rejected; keeping the running config"/)).toContain("tokens.txt:1");
    expect((await fetch(`${kp.url}/take`)).status).toBe(200);
    expect(await idsOf(kp.url)).toEqual(["a", "b", "c"]);
    expect(kp.proc.exitCode).toBeNull();
  });
});

describe("watch: true", () => {
  it("reloads when the config or a tokens file is saved, and rejects an invalid save without stopping", async () => {
    using dir = tempDir();
    const config = dir.file("keypool.yaml");
    writeFileSync(config, `${CONFIG}watch: true\n`);
    writeFileSync(dir.file("tokens.txt"), TWO_KEYS);
    await using kp = await spawnDaemon(["serve", "-c", config]);

    saveLikeAnEditor(dir.file("tokens.txt"), THREE_KEYS);
    expect(await kp.waitForLog(/"msg":"config reloaded"/)).toContain('"trigger":"watch"');
    expect(await idsOf(kp.url)).toEqual(["a", "b", "c"]);

    writeFileSync(config, `${CONFIG}watch: true\nrotation: fastest\n`);
    expect(await kp.waitForLog(/"msg":"reload rejected; keeping the running config"/)).toContain('"trigger":"watch"');
    expect((await fetch(`${kp.url}/take`)).status).toBe(200);

    // Still watching after a rejected save (and after the editor replaced the file).
    const reloadsSoFar = kp
      .log()
      .split("\n")
      .filter((line) => line.includes('"msg":"config reloaded"')).length;
    saveLikeAnEditor(config, `${CONFIG}watch: true\nrotation: random\n`);
    expect(await kp.waitForLog(/"msg":"config reloaded"/, reloadsSoFar)).toContain('"trigger":"watch"');
    expect(kp.log()).not.toContain("sk-test-");
  });
});
