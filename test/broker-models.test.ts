import { describe, expect, it } from "bun:test";
import YAML from "yaml";
import { ManualClock } from "../src/pool/clock";
import { type TestDaemon, jsonPost, startTestDaemon } from "./helpers/daemon";
import { POSTGRES_URL, announceSkip, freshSchema } from "./helpers/postgres";
import { canary, leaksOf } from "./reliability/_canary";

announceSkip("test/broker-models.test.ts");

// GET /take?model= and POST /release's model over HTTP, on a daemon whose clock stands still until
// a test moves it. The listener serves both routes natively (broker-fast-routes.ts); app.handle()
// runs the Elysia definitions, which must answer alike.
const BIG = "m-big";
const SMALL = "m-small";
const TOKENS = ["a", "b", "c"].map((id) => `${id},sk-test-${id.repeat(24)}\n`).join("");
const DENIED_BODY = '{"error":{"code":"model_not_found","message":"The model `m-big` does not exist"}}';
const NOT_A_MODEL =
  "model: not a model name — give the name the provider uses (letters, digits and . _ : / @ + -, " +
  "starting with a letter or digit), e.g. gpt-4o-mini";

type Backend = { name: string; store: () => Promise<{ yaml: Record<string, unknown> } & AsyncDisposable> };

const BACKENDS: Backend[] = [
  {
    name: "SQLite",
    store: async () => ({ yaml: { state_file: "state.db" }, async [Symbol.asyncDispose]() {} }),
  },
];
if (POSTGRES_URL) {
  BACKENDS.push({
    name: "PostgreSQL",
    store: async () => {
      const schema = await freshSchema();
      return {
        yaml: { store: { postgres: { url: schema.url } } },
        [Symbol.asyncDispose]: () => schema[Symbol.asyncDispose](),
      };
    },
  });
}

async function startBroker(store: Record<string, unknown>, clock: ManualClock): Promise<TestDaemon> {
  const config = { tokens_file: "tokens.txt", cooldown_sec: 0, server: { addr: "127.0.0.1:0" }, ...store };
  return startTestDaemon(YAML.stringify(config), TOKENS, { clock, random: () => 0, autoCheck: false });
}

/** Takes for `model` `n` times over HTTP, releasing each at once as a success; the ids handed out. */
async function takes(kp: TestDaemon, n: number, model: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const lease = (await (await kp.fetch(`/take?model=${model}`)).json()) as { id: string; lease: string };
    ids.push(lease.id);
    expect((await kp.fetch("/release", jsonPost({ lease: lease.lease, ok: true, model }))).status).toBe(200);
  }
  return ids;
}

async function takeFor(kp: TestDaemon, model: string): Promise<{ id: string; lease: string }> {
  const response = await kp.fetch(`/take?model=${encodeURIComponent(model)}`);
  expect(response.status).toBe(200);
  return response.json() as Promise<{ id: string; lease: string }>;
}

for (const backend of BACKENDS) {
  describe(`GET /take?model= and POST /release with a model (${backend.name})`, () => {
    it("rests only the pair on a 429: m-big moves to other keys, m-small keeps every key, until the rest ends", async () => {
      await using store = await backend.store();
      const clock = new ManualClock();
      await using kp = await startBroker(store.yaml, clock);
      const lease = await takeFor(kp, BIG);
      const release = await kp.fetch("/release", jsonPost({ lease: lease.lease, ok: false, status: 429, model: BIG }));
      expect([release.status, await release.json()]).toEqual([
        200,
        {
          ok: true,
          pool: "default",
          id: lease.id,
          state: expect.not.stringMatching(/^cooling$/),
          reason: null,
          pair: {
            model: BIG,
            state: "cooling",
            until: new Date(clock.now() + 60_000).toISOString(),
            reason: "rate_limit (HTTP 429); rung 1, resting 1m",
          },
        },
      ]);
      expect(await takes(kp, 6, BIG)).not.toContain(lease.id);
      expect(new Set(await takes(kp, 6, SMALL))).toEqual(new Set(["a", "b", "c"]));
      clock.advance(60_000);
      expect(await takes(kp, 6, BIG)).toContain(lease.id);
    });

    it("says model_denied when the key cannot use the model, and hands it out for other models only", async () => {
      await using store = await backend.store();
      const clock = new ManualClock();
      await using kp = await startBroker(store.yaml, clock);
      const lease = await takeFor(kp, BIG);
      const release = await kp.fetch(
        "/release",
        jsonPost({ lease: lease.lease, ok: false, status: 404, error_body: DENIED_BODY, model: BIG }),
      );
      expect([release.status, await release.json()]).toMatchObject([
        200,
        { id: lease.id, model_denied: true, pair: { model: BIG, state: "denied" } },
      ]);
      expect(await takes(kp, 6, BIG)).not.toContain(lease.id);
      expect(await takes(kp, 6, SMALL)).toContain(lease.id);
      // A take that names no model is the key's alone, as before.
      const anyModel = await (await kp.fetch("/take")).json();
      expect(anyModel.id).toBeDefined();
    });

    it("answers a release without a model, or a take without one, exactly as before", async () => {
      await using store = await backend.store();
      await using kp = await startBroker(store.yaml, new ManualClock());
      const lease = (await (await kp.fetch("/take")).json()) as { id: string; lease: string };
      const release = await kp.fetch("/release", jsonPost({ lease: lease.lease, ok: false, status: 429 }));
      expect(await release.json()).toEqual({
        ok: true,
        pool: "default",
        id: lease.id,
        state: "cooling",
        reason: "rate_limit (HTTP 429); rung 1, resting 1m",
      });
    });
  });
}

describe("a model that is not a model name", () => {
  const LEAK = canary("model-field");
  const badTakes = [
    ["a space", "gpt%204o"],
    ["a comma", "a,b"],
    ["a leading dot", ".hidden"],
    ["a canary token with a pipe", `${LEAK.token}|x`],
  ];

  it.each(badTakes)("is refused by GET /take (%s), alike on both paths", async (_, model) => {
    await using kp = await startBroker({ state_file: "state.db" }, new ManualClock());
    const fast = await kp.fetch(`/take?model=${model}`);
    const elysia = await kp.daemon.app.handle(new Request(`http://localhost/take?model=${model}`));
    const expected = { error: { code: "BAD_REQUEST", message: NOT_A_MODEL } };
    expect([fast.status, await fast.json()]).toEqual([400, expected]);
    expect([elysia.status, await elysia.json()]).toEqual([400, expected]);
    expect(leaksOf([LEAK], kp.logs)).toEqual([]);
  });

  it("is refused by POST /release, alike on both paths, and the lease stays out", async () => {
    await using kp = await startBroker({ state_file: "state.db" }, new ManualClock());
    const lease = await takeFor(kp, BIG);
    const body = { lease: lease.lease, ok: false, status: 429, model: "gpt 4o" };
    const fast = await kp.fetch("/release", jsonPost(body));
    const elysia = await kp.daemon.app.handle(new Request("http://localhost/release", jsonPost(body)));
    const expected = { error: { code: "BAD_REQUEST", message: NOT_A_MODEL } };
    expect([fast.status, await fast.json()]).toEqual([400, expected]);
    expect([elysia.status, await elysia.json()]).toEqual([400, expected]);
    const status = (await (await kp.fetch("/status")).json()) as { keys: Array<{ id: string; in_flight: number }> };
    expect(status.keys.find((k) => k.id === lease.id)?.in_flight).toBe(1);
  });

  it("is refused past 200 characters by the schema, on both paths", async () => {
    await using kp = await startBroker({ state_file: "state.db" }, new ManualClock());
    const path = `/take?model=${"m".repeat(201)}`;
    const fast = await kp.fetch(path);
    const elysia = await kp.daemon.app.handle(new Request(`http://localhost${path}`));
    const expected = {
      error: { code: "BAD_REQUEST", message: "model: Expected string length less or equal to 200" },
    };
    expect([fast.status, await fast.json()]).toEqual([400, expected]);
    expect([elysia.status, await elysia.json()]).toEqual([400, expected]);
  });

  it("counts an empty model as none", async () => {
    await using kp = await startBroker({ state_file: "state.db" }, new ManualClock());
    expect((await kp.fetch("/take?model=")).status).toBe(200);
  });
});
