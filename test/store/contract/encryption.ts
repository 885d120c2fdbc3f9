import { describe, expect, it } from "bun:test";
import { ConfigError } from "../../../src/config/errors";
import { createTokenCipher, parseMasterKey } from "../../../src/store/token-cipher";
import { type Harness, keys, settings } from "./_harness";

const cipher = (byte: string, name = "test key") => createTokenCipher(parseMasterKey(byte.repeat(32)), name);

async function openFailure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof Error) return error;
  }
  throw new Error("expected the store to refuse to open");
}

export function encryptionContract(h: Harness): void {
  describe("encryption at rest", () => {
    it("hands out the plain token, and refuses a store opened with another key or none", async () => {
      const backing = await h.backing();
      const { store } = await h.openStore(settings(), keys(2), { backing, cipher: cipher("11") });
      expect(keys(2).map((k) => k.token)).toContain((await store.take("default")).token);
      await store.close();
      const wrong = await openFailure(backing.open({ clock: { now: () => 0 }, cipher: cipher("22", "other key") }));
      expect(wrong).toBeInstanceOf(ConfigError);
      expect(wrong.message).toMatch(
        /other key is not the key .* was encrypted with \(key id \S+, the store's is \S+\)/,
      );
      expect((await openFailure(backing.open({ clock: { now: () => 0 } }))).message).toMatch(
        /holds encrypted tokens — set KEYPOOL_MASTER_KEY/,
      );
    });

    it("seals what a keypool without a key stored, once one opens the store", async () => {
      const backing = await h.backing();
      const { store: plain } = await h.openStore(settings(), keys(2), { backing });
      await plain.close();
      const { store: sealed } = await h.openStore(settings(), keys(2), { backing, cipher: cipher("11") });
      expect(keys(2).map((k) => k.token)).toContain((await sealed.take("default")).token);
      await sealed.close();
      expect((await openFailure(backing.open({ clock: { now: () => 0 } }))).message).toMatch(/holds encrypted tokens/);
    });

    it("re-encrypts every secret under a new key, after which only the new key opens the store", async () => {
      const backing = await h.backing();
      const withRefresh = keys(3).map((k, i) => (i === 0 ? { ...k, refreshToken: "rt-test-0123456789abcdefghij" } : k));
      const { store } = await h.openStore(settings(), withRefresh, { backing, cipher: cipher("11") });
      const next = cipher("33", "new key");
      // token and source_token of three keys, and one key's refresh token twice.
      expect(await store.reencrypt(next)).toEqual({ rewritten: 8 });
      // The store goes on serving under the new key without a restart.
      expect(withRefresh.map((k) => k.token)).toContain((await store.take("default")).token);
      await store.close();

      expect((await openFailure(backing.open({ clock: { now: () => 0 }, cipher: cipher("11") }))).message).toMatch(
        /is not the key/,
      );
      const reopened = await backing.open({ clock: { now: () => 0 }, cipher: next });
      await reopened.syncPools([{ settings: settings(), keys: withRefresh }]);
      const tokens = new Set<string>();
      for (let i = 0; i < 3; i++) tokens.add((await reopened.take("default")).token);
      expect([...tokens].sort()).toEqual(withRefresh.map((k) => k.token).sort());
      // The sync found the same tokens it was given: nothing was rewritten as a new credential.
      expect((await reopened.status("default")).map((s) => s.reason)).not.toContain("token replaced");
      await reopened.close();
    });

    it("encrypts a plain store under its first key", async () => {
      const backing = await h.backing();
      const { store } = await h.openStore(settings(), keys(2), { backing });
      expect(await store.reencrypt(cipher("44"))).toEqual({ rewritten: 4 });
      await store.close();
      expect((await openFailure(backing.open({ clock: { now: () => 0 } }))).message).toMatch(/holds encrypted tokens/);
    });
  });
}
