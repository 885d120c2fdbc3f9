import { describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { loadConfig } from "../src/config/load";
import { createDaemon } from "../src/daemon/create-daemon";
import { createLogger } from "../src/log";
import { startTestDaemon, adminClient } from "./helpers/daemon";
import { tempDir } from "./helpers/temp-dir";

const API_KEY = "admin-test-key-77";
const CANARY = "sk-canary-9f8e7d6c5b4a39281706f5e4";
const FILE_TOKENS = "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\nb,sk-test-bbbbbbbbbbbbbbbbbbbbbbbb\n";
const CONFIG = `tokens_file: tokens.txt\nstate_file: state.db\ncooldown_sec: 0\nserver:\n  addr: 127.0.0.1:0\n  api_key: ${API_KEY}\n`;

type Kp = Awaited<ReturnType<typeof startTestDaemon>>;

const client = (kp: Kp, seen: string[] = []) => adminClient(kp, API_KEY, seen);

describe("key administration over HTTP", () => {
  it("adds, lists, disables, changes and removes a key, never showing its token", async () => {
    await using kp = await startTestDaemon(CONFIG, FILE_TOKENS);
    const seen: string[] = [];
    const call = client(kp, seen);

    const added = await call("POST", "/pools/default/keys", {
      id: "c",
      token: CANARY,
      weight: 2,
      group: "acme",
      limits: { rpm: 600 },
    });
    expect(added).toEqual({
      status: 200,
      body: {
        pool: "default",
        id: "c",
        masked: "sk-…f5e4",
        origin: "api",
        state: "unknown",
        reason: null,
        enabled: true,
        weight: 2,
        group: "acme",
        limits: { max_concurrency: null, rpm: 600, tpm: null, daily_requests: null },
        in_flight: 0,
        budget: { day: null, month: null },
      },
    });
    const listed = await call("GET", "/pools/default/keys");
    expect(listed.body.keys.map((k: { id: string; origin: string }) => `${k.id}:${k.origin}`)).toEqual([
      "a:file",
      "b:file",
      "c:api",
    ]);
    expect((await call("GET", "/pools")).body).toEqual({
      pools: [
        {
          name: "default",
          keys: 3,
          origins: { file: 2, api: 1, env: 0 },
          takeable: 3,
          tokens_file: kp.dir.file("tokens.txt"),
        },
      ],
    });

    // Disabled on every key, file ones included: only c is handed out.
    for (const id of ["a", "b"])
      expect((await call("PATCH", `/pools/default/keys/${id}`, { enabled: false })).body.state).toBe("disabled");
    const take = await call("GET", "/take");
    expect([take.status, take.body.id, take.body.token]).toEqual([200, "c", CANARY]);
    seen.pop(); // The one answer that must carry the token.
    await call("POST", "/release", { lease: take.body.lease, ok: true });

    const changed = await call("PATCH", "/pools/default/keys/c", {
      weight: 1,
      group: null,
      limits: { rpm: null, tpm: 5000 },
    });
    expect([changed.body.weight, changed.body.group, changed.body.limits]).toEqual([
      1,
      null,
      { max_concurrency: null, rpm: null, tpm: 5000, daily_requests: null },
    ]);
    expect(await call("DELETE", "/pools/default/keys/c")).toEqual({
      status: 200,
      body: { pool: "default", id: "c", removed: true },
    });
    expect((await call("GET", "/take")).body.error.code).toBe("NO_KEY_AVAILABLE");
    expect((await call("GET", "/pools/default/keys/c")).status).toBe(404);
    expect((await call("DELETE", "/pools/default/keys/c")).body.error.code).toBe("UNKNOWN_KEY");
    expect((await call("GET", "/status")).body.keys.map((k: { id: string }) => k.id)).toEqual(["a", "b"]);

    expect(seen.filter((text) => text.includes(CANARY))).toEqual([]);
    expect(kp.logs.filter((line) => line.includes(CANARY))).toEqual([]);
  });

  it("refuses with 409 to change, remove or re-add a key its tokens file owns, naming the file", async () => {
    await using kp = await startTestDaemon(CONFIG, FILE_TOKENS);
    const call = client(kp);
    const file = kp.dir.file("tokens.txt");
    const owned = {
      code: "KEY_OWNED_BY_FILE",
      message: `key "a" in pool "default" is defined in ${file}; edit ${file} instead, then reload (POST /reload, SIGHUP or watch: true)`,
    };
    expect(await call("PATCH", "/pools/default/keys/a", { weight: 3 })).toEqual({
      status: 409,
      body: { error: owned },
    });
    expect(await call("DELETE", "/pools/default/keys/a")).toEqual({ status: 409, body: { error: owned } });
    expect(await call("POST", "/pools/default/keys", { id: "a", token: CANARY })).toEqual({
      status: 409,
      body: { error: owned },
    });
    const twin = await call("POST", "/pools/default/keys", { id: "z", token: "sk-test-bbbbbbbbbbbbbbbbbbbbbbbb" });
    expect(twin).toEqual({
      status: 409,
      body: { error: { code: "KEY_EXISTS", message: 'pool "default" already holds this token as key "b"' } },
    });
  });

  it("validates requests without echoing the token, and requires the API key", async () => {
    await using kp = await startTestDaemon(CONFIG, FILE_TOKENS);
    const call = client(kp);
    const spaced = await call("POST", "/pools/default/keys", { token: `${CANARY} x` });
    expect(spaced).toEqual({
      status: 400,
      body: { error: { code: "BAD_REQUEST", message: "token: contains whitespace — a token is one word" } },
    });
    expect((await call("POST", "/pools/default/keys", { token: CANARY, weight: 0 })).status).toBe(400);
    expect((await call("POST", "/pools/default/keys", { token: CANARY, id: "bad id" })).status).toBe(400);
    expect((await call("PATCH", "/pools/default/keys/a", {})).body.error.message).toBe(
      "nothing to change: give enabled, weight, group, limits or budget",
    );
    expect((await call("POST", "/pools/nope/keys", { token: CANARY })).body.error.code).toBe("UNKNOWN_POOL");
    const anonymous = await kp.fetch("/pools/default/keys", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: CANARY }),
    });
    expect(anonymous.status).toBe(401);
    // Without an id, the key gets the id a tokens file would give it.
    const derived = await call("POST", "/pools/default/keys", { token: CANARY });
    expect(derived.body.id).toMatch(/^t[0-9a-f]{8}$/);
  });

  it("keeps keys the API added across a restart and a reload", async () => {
    using dir = tempDir();
    writeFileSync(dir.file("tokens.txt"), FILE_TOKENS);
    writeFileSync(dir.file("keypool.yaml"), CONFIG);
    const logger = createLogger({ level: "error", format: "json", write: () => {} });
    const start = async () => {
      const daemon = await createDaemon(loadConfig(dir.file("keypool.yaml")), { logger, port: 0, autoCheck: false });
      await daemon.start();
      return daemon;
    };
    const headers = { "x-api-key": API_KEY, "content-type": "application/json" };

    const first = await start();
    const added = await fetch(`${first.url}/pools/default/keys`, {
      method: "POST",
      headers,
      body: JSON.stringify({ id: "c", token: CANARY }),
    });
    expect(added.status).toBe(200);
    await first.stop();

    const second = await start();
    try {
      expect((await second.store.listKeys("default")).map((k) => `${k.id}:${k.origin}`)).toEqual([
        "a:file",
        "b:file",
        "c:api",
      ]);
      writeFileSync(dir.file("tokens.txt"), "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\n");
      const reload = await fetch(`${second.url}/reload`, { method: "POST", headers });
      expect((await reload.json()).pools.default).toEqual({ added: 0, updated: 0, removed: 1, kept: 2 });
      expect((await second.store.listKeys("default")).map((k) => k.id)).toEqual(["a", "c"]);
    } finally {
      await second.stop();
    }
  });
});

describe("adding and removing keys under load", () => {
  it("a client taking continuously sees a new key appear and a removed key vanish, with no failed take", async () => {
    await using kp = await startTestDaemon(CONFIG, "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\n");
    const call = client(kp);
    const auth = { "x-api-key": API_KEY };
    const takes: Array<{ id: string; startedAfterRemoval: boolean }> = [];
    const failedTakes: number[] = [];
    const refusedReleases: string[] = [];
    let removed = false;
    let stopping = false;
    const watchers: Array<() => boolean> = [];
    const when = (condition: () => boolean) =>
      new Promise<void>((resolve) =>
        watchers.push(() => {
          if (!condition()) return false;
          resolve();
          return true;
        }),
      );
    const notify = () => {
      for (let i = watchers.length - 1; i >= 0; i--) if (watchers[i]!()) watchers.splice(i, 1);
    };

    const worker = async () => {
      while (!stopping) {
        const startedAfterRemoval = removed;
        const response = await fetch(`${kp.url}/take`, { headers: auth });
        if (response.status !== 200) {
          failedTakes.push(response.status);
          continue;
        }
        const lease = (await response.json()) as { id: string; lease: string };
        takes.push({ id: lease.id, startedAfterRemoval });
        const release = await fetch(`${kp.url}/release`, {
          method: "POST",
          headers: { ...auth, "content-type": "application/json" },
          body: JSON.stringify({ lease: lease.lease, ok: true }),
        });
        // Only a lease on the removed key may be gone by the time it comes back.
        if (release.status !== 200) refusedReleases.push(lease.id);
        notify();
      }
    };
    const workers = Array.from({ length: 4 }, worker);

    await when(() => takes.length >= 20);
    expect((await call("POST", "/pools/default/keys", { id: "c", token: CANARY })).status).toBe(200);
    await when(() => takes.some((t) => t.id === "c"));
    const seenBefore = takes.length;
    expect((await call("DELETE", "/pools/default/keys/c")).status).toBe(200);
    removed = true;
    await when(() => takes.filter((t) => t.startedAfterRemoval).length >= 40);
    stopping = true;
    await Promise.all(workers);

    expect(failedTakes).toEqual([]);
    expect(takes.slice(0, 20).every((t) => t.id === "a")).toBe(true);
    expect(takes.filter((t) => t.startedAfterRemoval && t.id === "c")).toEqual([]);
    expect(takes.slice(seenBefore).some((t) => t.id === "a")).toBe(true);
    expect(refusedReleases.filter((id) => id !== "c")).toEqual([]);
  });
});
