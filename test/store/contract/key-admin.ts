import { describe, expect, it } from "bun:test";
import type { Outcome } from "../../../src/pool/key-state";
import { HOUR_MS } from "../../../src/pool/usage";
import type { KeyInput, PoolStore } from "../../../src/store/types";
import { type Harness, settings } from "./_harness";

const FILE_KEYS: KeyInput[] = [
  { id: "a", token: "sk-test-aaaaaaaaaaaaaaaaaaaaaaaa", weight: 1 },
  { id: "b", token: "sk-test-bbbbbbbbbbbbbbbbbbbbbbbb", weight: 1 },
];
const API_TOKEN = "sk-api-0123456789abcdefghijklmn";

async function failure(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    const { code, message } = error as { code: string; message: string };
    if (code) return { code, message };
    throw error;
  }
  throw new Error("expected the call to fail");
}

/** Every key the pool hands out over `n` takes, each released at once. */
async function takenIds(store: PoolStore, n: number): Promise<Set<string>> {
  const ids = new Set<string>();
  for (let i = 0; i < n; i++) {
    const lease = await store.take("default");
    ids.add(lease.id);
    await store.release({ lease: lease.lease }, { ok: true });
  }
  return ids;
}

export function keyAdminContract(h: Harness): void {
  describe("addKey", () => {
    it("hands the new key out on the next takes and keeps it through a sync that does not list it", async () => {
      const { store } = await h.openStore(settings(), FILE_KEYS);
      const added = await store.addKey("default", {
        id: "c",
        token: API_TOKEN,
        weight: 1,
        group: "acme",
        limits: { rpm: 100 },
      });
      expect(added).toEqual({
        pool: "default",
        id: "c",
        masked: "sk-…klmn",
        origin: "api",
        state: "unknown",
        reason: null,
        enabled: true,
        weight: 1,
        group: "acme",
        limits: { maxConcurrency: null, rpm: 100, tpm: null, dailyRequests: null },
        inFlight: 0,
      });
      expect(await takenIds(store, 3)).toEqual(new Set(["a", "b", "c"]));

      const result = await store.syncPools([{ settings: settings(), keys: FILE_KEYS.slice(0, 1) }]);
      expect(result.default!.removed).toEqual(["b"]);
      expect((await store.listKeys("default")).map((k) => [k.id, k.origin])).toEqual([
        ["a", "file"],
        ["c", "api"],
      ]);
    });

    it("refuses an id the tokens file defines, an id already added and a token already held", async () => {
      const { store } = await h.openStore(settings(), FILE_KEYS);
      expect(await failure(store.addKey("default", { id: "a", token: API_TOKEN, weight: 1 }))).toEqual({
        code: "KEY_OWNED_BY_FILE",
        message:
          'key "a" in pool "default" is defined in the pool\'s tokens file; edit tokens.txt instead, then reload (POST /reload, SIGHUP or watch: true)',
      });
      await store.addKey("default", { id: "c", token: API_TOKEN, weight: 1 });
      expect(
        (await failure(store.addKey("default", { id: "c", token: "sk-other-0000000000000000", weight: 1 }))).code,
      ).toBe("KEY_EXISTS");
      const twin = await failure(store.addKey("default", { id: "d", token: FILE_KEYS[1]!.token, weight: 1 }));
      expect(twin).toEqual({ code: "KEY_EXISTS", message: 'pool "default" already holds this token as key "b"' });
      expect((await failure(store.addKey("nope", { id: "x", token: API_TOKEN, weight: 1 }))).code).toBe("UNKNOWN_POOL");
    });

    it("gives way to a tokens file that later defines the same id: the file owns it from then on", async () => {
      const { store } = await h.openStore(settings(), FILE_KEYS);
      await store.addKey("default", { id: "c", token: API_TOKEN, weight: 1, limits: { rpm: 5 } });
      await store.syncPools([{ settings: settings(), keys: [...FILE_KEYS, { id: "c", token: API_TOKEN, weight: 3 }] }]);
      const c = (await store.listKeys("default")).find((k) => k.id === "c")!;
      expect([c.origin, c.weight, c.limits.rpm]).toEqual(["file", 3, null]);
      expect((await failure(store.removeKey("default", "c"))).code).toBe("KEY_OWNED_BY_FILE");
    });
  });

  describe("updateKey", () => {
    it("disables and enables any key; a disabled key is never handed out, and stays off through a sync", async () => {
      const { store } = await h.openStore(settings(), FILE_KEYS);
      const disabled = await store.updateKey("default", "a", { enabled: false });
      expect([disabled.state, disabled.enabled, disabled.reason]).toEqual(["disabled", false, "disabled by operator"]);
      expect(await takenIds(store, 4)).toEqual(new Set(["b"]));
      await store.syncPools([{ settings: settings(), keys: FILE_KEYS }]);
      expect((await store.listKeys("default"))[0]!.state).toBe("disabled");
      const enabled = await store.updateKey("default", "a", { enabled: true });
      expect([enabled.state, enabled.enabled]).toEqual(["unknown", true]);
      expect(await takenIds(store, 4)).toEqual(new Set(["a", "b"]));
      // Then its first success makes it live.
      expect((await store.events({ key: "a", limit: 10 })).map((e) => `${e.from}->${e.to}`)).toEqual([
        "unknown->disabled",
        "disabled->unknown",
        "unknown->live",
      ]);
    });

    it("refuses to reshape a file key, and changes weight, group and limits of an added one", async () => {
      const { store } = await h.openStore(settings(), FILE_KEYS);
      expect((await failure(store.updateKey("default", "a", { weight: 2 }))).code).toBe("KEY_OWNED_BY_FILE");
      expect((await failure(store.updateKey("default", "zz", { enabled: false }))).code).toBe("UNKNOWN_KEY");
      await store.addKey("default", { id: "c", token: API_TOKEN, weight: 1, limits: { rpm: 10, tpm: 500 } });
      const changed = await store.updateKey("default", "c", {
        weight: 4,
        group: "acme",
        limits: { rpm: null, dailyRequests: 50 },
      });
      expect([changed.weight, changed.group, changed.limits]).toEqual([
        4,
        "acme",
        { maxConcurrency: null, rpm: null, tpm: 500, dailyRequests: 50 },
      ]);
      expect((await store.updateKey("default", "c", { group: null })).group).toBeNull();
    });

    it("lets a key's own limits win over the pool's", async () => {
      // The pool allows 2 in flight per key; key c is held to 1, and to 2 requests a minute.
      const { store, clock } = await h.openStore(settings({ maxConcurrency: 2 }), []);
      await store.addKey("default", { id: "c", token: API_TOKEN, weight: 1, limits: { maxConcurrency: 1, rpm: 2 } });
      const first = await store.take("default");
      expect((await failure(store.take("default"))).code).toBe("NO_KEY_AVAILABLE");
      await store.release({ lease: first.lease }, { ok: true });
      const second = await store.take("default");
      await store.release({ lease: second.lease }, { ok: true });
      // Two requests this minute: rpm rests the key until the window closes.
      const rested = (await store.listKeys("default"))[0]!;
      expect([rested.state, rested.reason]).toEqual([
        "cooling",
        "rpm limit (2) reached; resting until the minute window closes",
      ]);
      clock.advance(60_000);
      await store.updateKey("default", "c", { limits: { maxConcurrency: null } });
      const a = await store.take("default");
      const b = await store.take("default");
      expect([a.id, b.id]).toEqual(["c", "c"]);
    });
  });

  describe("removeKey", () => {
    it("removes an added key and its leases, and refuses a file key", async () => {
      const { store } = await h.openStore(settings(), FILE_KEYS);
      await store.addKey("default", { id: "c", token: API_TOKEN, weight: 1 });
      await store.updateKey("default", "a", { enabled: false });
      await store.updateKey("default", "b", { enabled: false });
      const lease = await store.take("default");
      expect(lease.id).toBe("c");
      await store.removeKey("default", "c");
      expect((await failure(store.release({ lease: lease.lease }, { ok: true }))).code).toBe("UNKNOWN_LEASE");
      expect((await failure(store.take("default"))).code).toBe("NO_KEY_AVAILABLE");
      expect((await failure(store.removeKey("default", "a"))).code).toBe("KEY_OWNED_BY_FILE");
      expect((await failure(store.removeKey("default", "c"))).code).toBe("UNKNOWN_KEY");
    });

    it("leaves env keys to the environment", async () => {
      const { store } = await h.openStore(
        settings(),
        FILE_KEYS.map((k) => ({ ...k, origin: "env" as const })),
      );
      const refused = await failure(store.removeKey("default", "a"));
      expect(refused.code).toBe("KEY_OWNED_BY_ENV");
    });
  });

  describe("usage", () => {
    const prices = { "gpt-4o-mini": { inputPerMtok: 0.15, outputPerMtok: 0.6 } };

    it("counts requests, successes, failures by class, tokens and cost per key, in hourly windows", async () => {
      const { store, clock } = await h.openStore(settings({ prices }), FILE_KEYS.slice(0, 1));
      clock.set(Date.UTC(2026, 0, 1, 10, 30));
      const use = async (outcome: Outcome) => store.release({ lease: (await store.take("default")).lease }, outcome);
      await use({
        ok: true,
        usage: { input: 1000, output: 200, cached: 100, cacheWrite: 300 },
        model: "gpt-4o-mini-2024-07-18",
      });
      await use({ ok: false, status: 500 });
      clock.advance(2 * HOUR_MS);
      await use({ ok: true, usage: { input: 10, output: 0 }, model: "unpriced" });
      await use({ ok: false, status: 400, body: "context_length_exceeded" });

      const hour = await store.usage({ window: "hour" });
      expect(hour.since).toBe(Date.UTC(2026, 0, 1, 11));
      expect(hour.keys).toEqual([
        {
          pool: "default",
          id: "a",
          present: true,
          usage: {
            requests: 2,
            successes: 1,
            failures: { rate_limit: 0, quota: 0, auth: 0, overloaded: 0, timeout: 0, network: 0, client: 1, other: 0 },
            inputTokens: 10,
            outputTokens: 0,
            cachedTokens: 0,
            cacheWriteTokens: 0,
            costMicros: 0,
          },
        },
      ]);
      const day = (await store.usage({ pool: "default", window: "day" })).keys[0]!.usage;
      // 1000 × 0.15 + 200 × 0.6 micro-dollars: the dated snapshot is priced as its model.
      expect([
        day.requests,
        day.successes,
        day.failures.overloaded,
        day.inputTokens,
        day.outputTokens,
        day.cachedTokens,
        day.cacheWriteTokens,
        day.costMicros,
      ]).toEqual([4, 2, 1, 1010, 200, 100, 300, 270]);
    });

    it("keeps lifetime totals after folding buckets past retention, and counts removed keys", async () => {
      const { store, clock } = await h.openStore(settings({ prices }), FILE_KEYS.slice(0, 1));
      await store.addKey("default", { id: "c", token: API_TOKEN, weight: 1 });
      await store.updateKey("default", "a", { enabled: false });
      const lease = await store.take("default");
      await store.release(
        { lease: lease.lease },
        { ok: true, usage: { input: 1_000_000, output: 0 }, model: "gpt-4o-mini" },
      );
      clock.advance(9 * 24 * HOUR_MS);
      await store.removeKey("default", "c");
      await store.updateKey("default", "a", { enabled: true });
      const next = await store.take("default");
      await store.release({ lease: next.lease }, { ok: true });

      expect((await store.usage({ window: "day" })).keys.map((k) => `${k.id}:${k.usage.requests}`)).toEqual(["a:1"]);
      const all = await store.usage({ window: "all" });
      expect(all.since).toBe(0);
      expect(all.keys.map((k) => [k.id, k.present, k.usage.requests, k.usage.costMicros])).toEqual([
        ["a", true, 1, 0],
        ["c", false, 1, 150_000],
      ]);
    });
  });

  describe("addKey across reopening", () => {
    it("survives closing and reopening the store", async () => {
      const first = await h.openStore(settings(), FILE_KEYS);
      await first.store.addKey("default", { id: "c", token: API_TOKEN, weight: 2 });
      await first.store.close();
      const second = await h.openStore(settings(), FILE_KEYS, { backing: first.backing });
      expect((await second.store.listKeys("default")).map((k) => `${k.id}:${k.origin}:${k.weight}`)).toEqual([
        "a:file:1",
        "b:file:1",
        "c:api:2",
      ]);
      expect(await takenIds(second.store, 3)).toEqual(new Set(["a", "b", "c"]));
    });
  });
}
