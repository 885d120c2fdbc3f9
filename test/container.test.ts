import { describe, expect, it } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { ConfigError } from "../src/config/errors";
import { findConfig } from "../src/config/find-config";
import { loadConfig } from "../src/config/load";
import { localUrlOf } from "../src/cli/_client";
import { deadUrl } from "./helpers/fake-upstream";
import { startTestDaemon } from "./helpers/daemon";
import { runKeypool } from "./helpers/run-keypool";
import { spawnDaemon } from "./helpers/spawn-daemon";
import { tempDir } from "./helpers/temp-dir";

const ROOT = resolve(import.meta.dir, "..");

describe("keypool health", () => {
  it("exits 0 when /health answers, 1 when nothing listens", async () => {
    await using kp = await startTestDaemon(
      'server: { addr: "127.0.0.1:0" }\ntokens_file: tokens.txt\n',
      "a,sk-a-0123456789abcdef\n",
    );
    const up = await runKeypool(["health", "--url", kp.url]);
    expect(up).toEqual({ code: 0, stdout: `ok: ${kp.url}/health\n`, stderr: "" });
    const down = await runKeypool(["health", "--url", await deadUrl()]);
    expect(down.code).toBe(1);
    expect(down.stderr).toStartWith("unhealthy:");
  });
});

// The image cannot be built here (no container engine), so these hold its pieces to each other.
describe("container image", () => {
  const dockerfile = readFileSync(resolve(ROOT, "Dockerfile"), "utf8");

  it("runs as non-root, keeps state on /data, exposes both ports and checks itself", () => {
    expect(dockerfile).toContain("USER nonroot:nonroot");
    expect(dockerfile).toContain('VOLUME ["/data"]');
    expect(dockerfile).toContain("EXPOSE 8787 8080 8769 4577");
    expect(dockerfile).toContain('CMD ["/usr/local/bin/keypool", "health"]');
    expect(dockerfile).toContain("COPY --chmod=0755 dist/keypool-linux-x64 /usr/local/bin/keypool");
    expect(readFileSync(resolve(ROOT, ".dockerignore"), "utf8")).toContain("!dist/keypool-linux-x64");
  });

  it("ships an example config that matches the image and will not start without an API key", () => {
    using dir = tempDir();
    writeFileSync(dir.file("tokens.txt"), "a,sk-a-0123456789abcdef\n");
    const text = readFileSync(resolve(ROOT, "docker/keypool.yaml"), "utf8").replaceAll(
      "/etc/keypool/tokens.txt",
      dir.file("tokens.txt"),
    );
    writeFileSync(dir.file("keypool.yaml"), text);

    const config = loadConfig(dir.file("keypool.yaml"), { KEYPOOL_API_KEY: "change-me" });
    expect(config.stateFile).toBe("/data/keypool.db");
    expect(config.server).toEqual({ host: "0.0.0.0", port: 8787, apiKey: "change-me" });
    expect(config.pools.default!.upstream).toMatchObject({ enabled: true, listen: "0.0.0.0:8080" });
    expect(dockerfile).toContain('CMD ["serve"]');
    expect(imageEnv()).toMatchObject({ KEYPOOL_DEFAULT_CONFIG: "/etc/keypool/keypool.yaml" });

    expect(() => loadConfig(dir.file("keypool.yaml"), {})).toThrow(ConfigError);
  });

  // Key Pool Manager's `docker run -p 8769:8769 -e GPT_4_KEYS=… key-pool`, with keypool's image.
  it("serves Key Pool Manager's environment on its published port 8769, and checks itself there", () => {
    using dir = tempDir();
    const env = { ...imageEnv(), GPT_4_KEYS: "sk-proj-xxx,sk-proj-yyy", CLAUDE_3_OPUS_KEYS: "sk-ant-xxx" };
    const config = findConfig({ cwd: dir.path, env });
    expect([config.server, config.stateFile, Object.keys(config.pools)]).toEqual([
      { host: "0.0.0.0", port: 8769 },
      "/data/keypool.db",
      ["claude-3-opus", "gpt-4"],
    ]);
    expect(localUrlOf(config.server)).toBe("http://127.0.0.1:8769");
    expect(dockerfile).toMatch(/^WORKDIR \/data$/m);
  });

  // api-key-lb's `API_KEYS=… TARGET=…`: its state would go under the home directory, off the volume.
  it("keeps an API_KEYS pool's state on the /data volume too", () => {
    using dir = tempDir();
    const env = { ...imageEnv(), HOME: dir.path, API_KEYS: "sk-key1,sk-key2", TARGET: "https://api.z.ai" };
    const config = findConfig({ cwd: dir.path, env, home: dir.path });
    expect([config.stateFile, config.pools.default!.upstream?.listen]).toEqual(["/data/keypool.db", "0.0.0.0:4577"]);
  });

  /** The image's ENV lines as a map (one ENV instruction, continued with backslashes). */
  function imageEnv(): Record<string, string> {
    const line = /^ENV ((?:.*\\\n)*.*)$/m.exec(dockerfile)?.[1] ?? "";
    return Object.fromEntries([...line.matchAll(/([A-Z_]+)=(\S+)/g)].map((m) => [m[1]!, m[2]!]));
  }
});

describe("keypool health without --url", () => {
  it("asks the address keypool serve would listen on, from the same environment", async () => {
    using dir = tempDir();
    await using kp = await spawnDaemon(
      ["serve"],
      { GPT_4_KEYS: "sk-proj-xxx", KEY_POOL_PORT: "0" },
      { cwd: dir.path, cleanEnv: true },
    );
    const port = new URL(kp.url).port;
    const up = Bun.spawnSync([process.execPath, resolve(ROOT, "src/main.ts"), "health"], {
      cwd: dir.path,
      env: { PATH: process.env.PATH ?? "", GPT_4_KEYS: "sk-proj-xxx", KEY_POOL_PORT: port },
    });
    expect([up.exitCode, up.stdout.toString()]).toEqual([0, `ok: http://127.0.0.1:${port}/health\n`]);
  });
});
