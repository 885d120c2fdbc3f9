import { describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import YAML from "yaml";
import { type KeyPool, DomainError, openPool } from "../src/lib/index";
import { ManualClock } from "../src/pool/clock";
import { POSTGRES_URL, announceSkip, freshSchema } from "./helpers/postgres";
import { tempDir } from "./helpers/temp-dir";

announceSkip("test/library-models.test.ts");

// take({ model }) and a release's model in the library: the same pairs as the daemon's, in-process.
const BIG = "m-big";
const SMALL = "m-small";
const KEYS = ["a", "b", "c"].map((id) => ({ id, token: `sk-lib-${id.repeat(24)}` }));

/** An error shaped like the openai SDK's APIError: the status, and the upstream's words in the message. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(`${status} ${message}`);
  }
}

/** Takes for `model` `n` times, giving each back at once as a success; the ids handed out. */
async function takes(pool: KeyPool, n: number, model: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const lease = await pool.take({ model });
    ids.push(lease.id);
    await pool.release(lease, { ok: true, model });
  }
  return ids;
}

type Opener = (clock: ManualClock) => Promise<KeyPool & AsyncDisposable>;

const OPENERS: Array<[string, Opener]> = [["in memory", (clock) => openPool({ keys: KEYS, clock })]];
if (POSTGRES_URL) {
  OPENERS.push([
    "PostgreSQL",
    async (clock) => {
      const schema = await freshSchema();
      const dir = tempDir();
      writeFileSync(dir.file("tokens.txt"), KEYS.map((k) => `${k.id},${k.token}\n`).join(""));
      const config = { tokens_file: "tokens.txt", cooldown_sec: 0, store: { postgres: { url: schema.url } } };
      writeFileSync(dir.file("keypool.yaml"), YAML.stringify(config));
      const pool = await openPool({ config: dir.file("keypool.yaml"), clock });
      const close = async () => {
        await pool.close();
        await schema[Symbol.asyncDispose]();
        dir[Symbol.dispose]();
      };
      return { ...pool, close, [Symbol.asyncDispose]: close };
    },
  ]);
}

for (const [name, open] of OPENERS) {
  describe(`the library with a model (${name})`, () => {
    it("rests only the pair on a 429: the model moves to other keys, other models keep the key", async () => {
      const clock = new ManualClock();
      await using pool = await open(clock);
      const lease = await pool.take({ model: BIG });
      const result = await pool.release(lease, { ok: false, status: 429, model: BIG });
      expect(result).toMatchObject({ id: lease.id, pair: { model: BIG, state: "cooling" } });
      // A minute, less the rest's jitter (the library takes no random source).
      expect(result.pair!.until - clock.now()).toBeWithin(54_000, 60_001);
      expect(await takes(pool, 6, BIG)).not.toContain(lease.id);
      expect(new Set(await takes(pool, 6, SMALL))).toEqual(new Set(["a", "b", "c"]));
      clock.advance(60_000);
      expect(await takes(pool, 6, BIG)).toContain(lease.id);
    });

    it("withKey({ model }) reports a key without the model, which is then never given out for it", async () => {
      const clock = new ManualClock();
      await using pool = await open(clock);
      let lacking: string | undefined;
      const call = (_: string, lease: { id: string }) => {
        if (lacking === undefined) lacking = lease.id;
        if (lease.id === lacking) {
          throw new ApiError(404, "The model `m-big` does not exist or you do not have access to it.");
        }
        return lease.id;
      };
      await expect(pool.withKey(call, { model: BIG })).rejects.toThrow("does not exist");
      const served: string[] = [];
      for (let i = 0; i < 6; i++) served.push(await pool.withKey(call, { model: BIG }));
      expect(served).not.toContain(lacking);
      expect(await takes(pool, 6, SMALL)).toContain(lacking!);
      expect((await pool.status()).keys.find((k) => k.id === lacking)?.state).not.toBe("quarantined");
    });
  });
}

describe("the library's model option", () => {
  it("asks a fallback pool for its modelMap name", async () => {
    await using pool = await openPool({
      pools: {
        openai: { keys: [KEYS[0]!], fallback: ["azure"] },
        azure: { keys: [KEYS[1]!], modelMap: { [BIG]: "azure-big" } },
      },
      pool: "openai",
      clock: new ManualClock(),
    });
    await pool.release(await pool.take({ model: BIG }), { ok: false, status: 429, model: BIG });
    const fallback = await pool.take({ model: BIG });
    expect([fallback.pool, pool.modelFor(fallback, BIG)]).toEqual(["azure", "azure-big"]);
    await pool.release(fallback, { ok: false, status: 429, model: pool.modelFor(fallback, BIG) });
    // azure's key rests for azure-big, the name its take was asked for: no key of the chain is left for m-big.
    const error = await pool.take({ model: BIG }).catch((e: unknown) => e);
    expect((error as DomainError).code).toBe("NO_KEY_AVAILABLE");
    expect((await pool.take({ model: SMALL })).pool).toBe("openai");
  });

  it("refuses a model that is not a model name, naming the fix", async () => {
    await using pool = await openPool({ keys: KEYS });
    const error = await pool.take({ model: "gpt 4o" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DomainError);
    expect([(error as DomainError).code, (error as DomainError).message]).toEqual([
      "BAD_REQUEST",
      expect.stringContaining("model: not a model name"),
    ]);
    const lease = await pool.take();
    await expect(pool.release(lease, { ok: true, model: "a|b" })).rejects.toThrow("not a model name");
  });
});
