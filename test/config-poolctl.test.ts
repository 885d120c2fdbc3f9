import { describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { ConfigError } from "../src/config/errors";
import { loadConfig } from "../src/config/load";
import { tempDir } from "./helpers/temp-dir";

const TOKENS = "key1,sk-test-aaaaaaaaaaaaaaaa0001\nsk-test-bbbbbbbbbbbbbbbb0002\n";

/** Loads `yaml` as pool.yaml beside tokens.txt; `files` are written first. */
function load(yaml: string, files: Record<string, string> = {}) {
  using dir = tempDir();
  for (const [name, text] of Object.entries({ "tokens.txt": TOKENS, ...files, "pool.yaml": yaml }))
    writeFileSync(dir.file(name), text);
  return { config: loadConfig(dir.file("pool.yaml"), {}), dir: dir.path };
}

function issuesFor(yaml: string): string[] {
  try {
    load(yaml);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  throw new Error("expected a ConfigError, but the config loaded");
}

describe("poolctl's config keys, with poolctl's meaning", () => {
  it("takes check.type http with url and command with cmd", () => {
    const http = load('tokens_file: tokens.txt\ncheck:\n  type: http\n  url: "https://api.example.com/me"\n').config;
    const command = load(
      'tokens_file: tokens.txt\ncheck:\n  type: command\n  cmd: "true"\n  success_output: ""\n',
    ).config;
    expect([http.pools.default!.check?.kind, command.pools.default!.check?.kind]).toEqual(["http", "command"]);
  });

  it("names a check.type that disagrees with url or cmd, or is neither kind", () => {
    expect(
      issuesFor('tokens_file: tokens.txt\ncheck:\n  type: command\n  url: "https://api.example.com/me"\n'),
    ).toEqual([
      'check.type: is command, but the check has url and no cmd — give cmd, the command run for each token, e.g. "./probe.sh {token}", or write type: http',
    ]);
    expect(issuesFor("tokens_file: tokens.txt\ncheck:\n  type: http\n  cmd: ./probe.sh\n")).toEqual([
      "check.type: is http, but the check has cmd and no url — give url, the address probed with each token, e.g. https://api.example.com/v1/models, or write type: command",
    ]);
    expect(issuesFor("tokens_file: tokens.txt\ncheck:\n  type: http\n")).toEqual([
      "check.url: required by type: http — give url, the address probed with each token, e.g. https://api.example.com/v1/models",
    ]);
    expect(issuesFor('tokens_file: tokens.txt\ncheck:\n  type: grpc\n  url: "https://api.example.com/me"\n')).toEqual([
      'check.type: "grpc" is not one of http, command',
    ]);
  });

  it('reads an empty string as "none" for optional URLs, addresses and secrets', () => {
    const { config } = load(
      'tokens_file: tokens.txt\nproxy: ""\nserver:\n  addr: ":8787"\n  api_key: ""\nmetrics:\n  addr: ""\n' +
        'refresh:\n  enabled: false\n  url: ""\nupstream:\n  enabled: false\n  base_url: ""\n',
    );
    expect({
      proxy: config.pools.default!.proxy,
      server: config.server,
      metrics: config.metrics,
      refreshUrl: config.pools.default!.refresh?.url,
      baseUrl: config.pools.default!.upstream?.baseUrl,
    }).toEqual({
      proxy: undefined,
      server: { host: "0.0.0.0", port: 8787, apiKey: undefined },
      metrics: undefined,
      refreshUrl: "",
      baseUrl: undefined,
    });
  });

  it('reads cooldown_sec: -1, poolctl\'s "no rest", as 0', () => {
    const { config } = load("tokens_file: tokens.txt\ncooldown_sec: -1\nupstream:\n  cooldown_sec: -1\n");
    expect([config.pools.default!.cooldownSec, config.pools.default!.upstream?.cooldownSec]).toEqual([0, 0]);
    expect(issuesFor("tokens_file: tokens.txt\ncooldown_sec: -2\n")).toEqual([
      "cooldown_sec: expected a number of seconds ≥ 0 and ≤ 604800, got -2",
    ]);
  });

  it("keeps its own state beside a JSON state_file, which it only reads", () => {
    const written = load("tokens_file: tokens.txt\nstate_file: pool_state.json\n");
    expect([written.config.stateFile, written.config.poolctlStateFile]).toEqual([
      `${written.dir}/pool_state.keypool.db`,
      `${written.dir}/pool_state.json`,
    ]);
    // Told by its content, whatever its name.
    const named = load("tokens_file: tokens.txt\nstate_file: state\n", { state: '[{"id":"key1"}]' });
    expect([named.config.stateFile, named.config.poolctlStateFile]).toEqual([
      `${named.dir}/state.keypool.db`,
      `${named.dir}/state`,
    ]);
    const sqlite = load("tokens_file: tokens.txt\nstate_file: keypool.db\n");
    expect([sqlite.config.stateFile, sqlite.config.poolctlStateFile]).toEqual([`${sqlite.dir}/keypool.db`, undefined]);
  });
});
