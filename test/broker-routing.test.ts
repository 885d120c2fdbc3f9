import { describe, expect, it } from "bun:test";
import { ManualClock } from "../src/pool/clock";
import { type TestDaemon, jsonPost, startTestDaemon } from "./helpers/daemon";

const TOKENS = "a,sk-test-aaaaaaaaaaaaaaaa0001\nb,sk-test-bbbbbbbbbbbbbbbb0002\nc,sk-test-cccccccccccccccc0003\n";

/** One pool of three keys (a, b, c), each lent to one caller at a time, so a key is free only once released. */
const onePool = () => `
state_file: state.db
server: { addr: "127.0.0.1:0" }
tokens_file: tokens.txt
cooldown_sec: 0
max_concurrency: 1
`;

interface Taken {
  id: string;
  pool: string;
  lease: string;
}

async function take(kp: TestDaemon, query = ""): Promise<Taken> {
  const response = await kp.fetch(`/take${query}`);
  expect(response.status).toBe(200);
  return (await response.json()) as Taken;
}

async function release(kp: TestDaemon, lease: string): Promise<void> {
  expect((await kp.fetch("/release", jsonPost({ lease, ok: true }))).status).toBe(200);
}

describe("GET /take?session=", () => {
  it("keeps a session on one key while plain takes rotate, and /status counts it", async () => {
    await using kp = await startTestDaemon(onePool(), TOKENS);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const sticky = await take(kp, "?session=conv-1");
      const plain = await take(kp);
      ids.push(sticky.id, plain.id);
      await release(kp, sticky.lease);
      await release(kp, plain.lease);
    }
    const own = ids[0]!;
    expect(ids.filter((_, i) => i % 2 === 0)).toEqual(Array(5).fill(own));
    expect(new Set(ids.filter((_, i) => i % 2 === 1)).size).toBeGreaterThan(1);
    const status = (await (await kp.fetch("/status")).json()) as { keys: Array<{ id: string; sessions: number }> };
    expect(Object.fromEntries(status.keys.map((k) => [k.id, k.sessions]))).toEqual({ a: 0, b: 0, c: 0, [own]: 1 });
  });
});

describe("GET /take?wait=", () => {
  it("serves waiters in the order they came, one per released key", async () => {
    await using kp = await startTestDaemon(onePool(), TOKENS);
    const held = [await take(kp), await take(kp), await take(kp)];
    // Started one by one, each in line before the next is sent, so the arrival order is known.
    const waiters: Array<Promise<{ index: number; taken: Taken }>> = [];
    for (let index = 0; index < 4; index++) {
      waiters.push(kp.fetch("/take?wait=30").then(async (r) => ({ index, taken: (await r.json()) as Taken })));
      await kp.daemon.keys.whenWaiting("default", index + 1);
    }
    const served: number[] = [];
    const pending = new Map(waiters.map((w, i) => [i, w]));
    for (let step = 0; step < 4; step++) {
      await release(kp, held.shift()!.lease);
      const next = await Promise.race(pending.values());
      pending.delete(next.index);
      served.push(next.index);
      held.push(next.taken);
    }
    expect(served).toEqual([0, 1, 2, 3]);
  });

  it("answers 503 with Retry-After when no key frees up in time", async () => {
    const clock = new ManualClock();
    await using kp = await startTestDaemon(onePool(), TOKENS, { clock });
    for (let i = 0; i < 3; i++) await take(kp);
    const answer = kp.fetch("/take?wait=5");
    await kp.daemon.keys.whenWaiting("default", 1);
    clock.advance(5000);
    await kp.daemon.keys.tick();
    const response = await answer;
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect([response.status, response.headers.get("retry-after"), body.error.code]).toEqual([
      503,
      expect.stringMatching(/^\d+$/),
      "NO_KEY_AVAILABLE",
    ]);
    expect(body.error.message).toContain("within the 5s wait");
  });

  it("takes a caller that disconnects out of line", async () => {
    await using kp = await startTestDaemon(onePool(), TOKENS);
    for (let i = 0; i < 3; i++) await take(kp);
    const controller = new AbortController();
    const gone = kp.fetch("/take?wait=30", { signal: controller.signal }).catch((error: Error) => error.name);
    await kp.daemon.keys.whenWaiting("default", 1);
    controller.abort();
    expect(await gone).toBe("AbortError");
    await kp.daemon.keys.whenWaiting("default", 0);
  });

  it("rejects a wait that is not a number of seconds", async () => {
    await using kp = await startTestDaemon(onePool(), TOKENS);
    expect((await kp.fetch("/take?wait=soon")).status).toBe(400);
  });
});

describe("GET /take with fallback pools", () => {
  const pools = `
state_file: state.db
server: { addr: "127.0.0.1:0" }
cooldown_sec: 0
max_concurrency: 1
pools:
  main: { tokens_file: tokens.txt, fallback: [backup] }
  backup: { tokens_file: backup.txt }
`;

  it("hands out the fallback pool's keys, named as such, once the pool's own are taken", async () => {
    await using kp = await startTestDaemon(
      pools.replace("backup.txt", "tokens.txt"),
      "a,sk-test-aaaaaaaaaaaaaaaa0001\n",
    );
    const first = await take(kp, "?pool=main");
    const second = await take(kp, "?pool=main");
    const third = await kp.fetch("/take?pool=main");
    expect([first.pool, second.pool, third.status]).toEqual(["main", "backup", 503]);
    expect(((await third.json()) as { error: { message: string } }).error.message).toStartWith(
      'no key in pool "main" or its fallbacks (backup)',
    );
    // The backup pool on its own has no fallback: its key is out.
    expect((await kp.fetch("/take?pool=backup")).status).toBe(503);
  });
});
