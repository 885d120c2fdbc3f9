import { describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import type { HttpCheckConfig } from "../src/config/types";
import { ConfigError } from "../src/config/errors";
import { parseConfig } from "../src/config/load";
import type { KeyInput } from "../src/store/types";
import { startFakeUpstream } from "./helpers/fake-upstream";
import { openHealthPool } from "./helpers/health-pool";
import { tempDir } from "./helpers/temp-dir";

// check.model: the model a probe calls, so that its success also gives a denied (key, model) pair back.
const BIG = "m-big";
const DENIED_BODY = '{"error":{"code":"model_not_found","message":"The model `m-big` does not exist"}}';

function load(check: string) {
  using dir = tempDir();
  writeFileSync(dir.file("tokens.txt"), "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\n");
  return parseConfig(`tokens_file: tokens.txt\nstate_file: ':memory:'\ncheck:\n${check}`, {
    baseDir: dir.path,
    env: {},
  });
}

function issuesOf(check: string): string[] {
  try {
    load(check);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  throw new Error("expected a ConfigError, but the config loaded");
}

describe("check.model in a config file", () => {
  it("is read beside the check's other keys, for either kind of check", () => {
    const http = load("  url: https://api.openai.com/v1/models/gpt-4o\n  model: gpt-4o\n");
    expect(http.pools.default!.check).toMatchObject({ kind: "http", model: "gpt-4o" });
    const command = load("  cmd: ./probe.sh\n  model: claude-3-5-haiku-latest\n");
    expect(command.pools.default!.check).toMatchObject({ kind: "command", model: "claude-3-5-haiku-latest" });
    expect(load("  url: https://api.openai.com/v1/models\n").pools.default!.check?.model).toBeUndefined();
  });

  it("refuses a model that is not a model name, naming the field and the fix", () => {
    expect(issuesOf('  url: https://api.openai.com/v1/models/gpt-4o\n  model: "gpt 4o"\n')).toEqual([
      "check.model: is not a model name — write the model the probe calls as the provider spells it " +
        "(letters, digits and . _ : / @ + -), e.g. gpt-4o for url: https://api.openai.com/v1/models/gpt-4o",
    ]);
    expect(issuesOf("  url: https://api.openai.com/v1/models/gpt-4o\n  model: 4\n")).toEqual([
      "check.model: expected a string, got 4 — put it in quotes",
    ]);
  });
});

function keys(n: number): KeyInput[] {
  return Array.from({ length: n }, (_, i) => ({ id: `k${i}`, token: `sk-k${i}-0123456789abcdef`, weight: 1 }));
}

function httpCheck(url: string, model?: string): HttpCheckConfig {
  return {
    kind: "http",
    url,
    method: "GET",
    headers: { authorization: "Bearer {token}" },
    successStatus: [200],
    timeoutSec: 5,
    model,
  };
}

/** The ids `n` takes for `model` hand out, each given back at once. */
async function takesFor(store: Awaited<ReturnType<typeof openHealthPool>>["store"], n: number, model: string) {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const lease = await store.take("default", { model });
    ids.push(lease.id);
    await store.release({ lease: lease.lease }, { ok: true, model });
  }
  return ids;
}

describe("a health check that names its model", () => {
  it("gives a denied pair its access back when the probe succeeds", async () => {
    await using upstream = await startFakeUpstream(() => Response.json({ id: BIG, object: "model" }));
    await using h = await openHealthPool({ keys: keys(2), check: httpCheck(`${upstream.url}/v1/models/${BIG}`, BIG) });
    await h.store.release({ id: "k0" }, { ok: false, status: 404, body: DENIED_BODY, model: BIG });
    expect(await takesFor(h.store, 4, BIG)).not.toContain("k0");

    await h.checker.tick();
    expect(upstream.calls.map((c) => c.path)).toEqual([`/v1/models/${BIG}`, `/v1/models/${BIG}`]);
    expect((await h.status()).k0!.models).toEqual({});
    expect(await takesFor(h.store, 4, BIG)).toContain("k0");
  });

  it("leaves the pair denied when the check names no model", async () => {
    await using upstream = await startFakeUpstream(() => Response.json({ object: "list", data: [] }));
    await using h = await openHealthPool({ keys: keys(2), check: httpCheck(`${upstream.url}/v1/models`) });
    await h.store.release({ id: "k0" }, { ok: false, status: 404, body: DENIED_BODY, model: BIG });
    await h.checker.tick();
    expect(upstream.calls).toHaveLength(2);
    expect((await h.status()).k0!.models[BIG]?.state).toBe("denied");
    expect(await takesFor(h.store, 4, BIG)).not.toContain("k0");
  });
});
