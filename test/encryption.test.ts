import { describe, expect, it } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { ConfigError } from "../src/config/errors";
import { systemClock } from "../src/pool/clock";
import { SqliteStore } from "../src/store/sqlite/sqlite-store";
import { TokenDecryptError, createTokenCipher, isEncrypted, keyIdOf, parseMasterKey } from "../src/store/token-cipher";
import { spawnDaemon } from "./helpers/spawn-daemon";
import { tempDir } from "./helpers/temp-dir";

const KEY_HEX = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const OTHER_HEX = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
const TOKENS = ["sk-secret-aaaaaaaaaaaaaaaaaaaaaaaa", "sk-secret-bbbbbbbbbbbbbbbbbbbbbbbb"];
const REFRESH = "rt-secret-cccccccccccccccccccccccc";
const REFRESHED = "sk-secret-dddddddddddddddddddddddd";
const SETTINGS = {
  name: "default",
  rotation: "lru" as const,
  cooldownSec: 0,
  leaseTtlSec: 300,
  recheckIntervalSec: 300,
};
const MAIN = `${import.meta.dir}/../src/main.ts`;

const cipher = (hex = KEY_HEX) => createTokenCipher(parseMasterKey(hex), "test key");

/** Every byte SQLite has written for the file: the database and, while it is open, its write-ahead log. */
function fileBytes(path: string): string {
  return [path, `${path}-wal`]
    .filter(existsSync)
    .map((p) => readFileSync(p).toString("latin1"))
    .join("");
}

function secretsIn(path: string, secrets: string[]): string[] {
  const bytes = fileBytes(path);
  return secrets.filter((s) => bytes.includes(s));
}

describe("token cipher", () => {
  it("round-trips through enc:v1:<key id>:<iv>:<ciphertext>, with a fresh IV each time", () => {
    const c = cipher();
    const one = c.encrypt(TOKENS[0]!);
    const two = c.encrypt(TOKENS[0]!);
    expect(one).not.toBe(two);
    expect(one).toMatch(/^enc:v1:[A-Za-z0-9_-]{11}:[A-Za-z0-9_-]{16}:[A-Za-z0-9_-]+$/);
    expect([isEncrypted(one), keyIdOf(one), c.decrypt(one), c.decrypt(two)]).toEqual([
      true,
      c.keyId,
      TOKENS[0],
      TOKENS[0],
    ]);
  });

  it("refuses a value written under another key, or altered", () => {
    const sealed = cipher().encrypt(TOKENS[0]!);
    expect(() => cipher(OTHER_HEX).decrypt(sealed)).toThrow(TokenDecryptError);
    const flipped = sealed.slice(0, -2) + (sealed.at(-2) === "A" ? "B" : "A") + sealed.slice(-1);
    expect(() => cipher().decrypt(flipped)).toThrow(TokenDecryptError);
  });

  it("reads 64 hex digits or base64 of 32 bytes as the key itself, anything else as a passphrase", () => {
    const raw = parseMasterKey(KEY_HEX);
    expect(parseMasterKey(`${Buffer.from(raw).toString("base64")}\n`)).toEqual(raw);
    expect(parseMasterKey(Buffer.from(raw).toString("base64url"))).toEqual(raw);
    const passphrase = parseMasterKey("correct horse battery staple");
    expect(passphrase.length).toBe(32);
    expect(parseMasterKey("correct horse battery staple")).toEqual(passphrase);
    expect(() => parseMasterKey("short")).toThrow(/too short/);
  });
});

describe("SQLite store with a master key", () => {
  it("keeps tokens, source tokens and refresh tokens out of the database and its WAL", async () => {
    using dir = tempDir();
    const path = dir.file("state.db");
    const store = new SqliteStore({ path, clock: systemClock, cipher: cipher() });
    const keys = [
      { id: "a", token: TOKENS[0]!, weight: 1, refreshToken: REFRESH },
      { id: "b", token: TOKENS[1]!, weight: 1 },
    ];
    await store.syncPools([{ settings: SETTINGS, keys }]);
    const lease = await store.take("default");
    expect(TOKENS).toContain(lease.token);
    await store.release({ lease: lease.lease }, { ok: true });

    // A refresh writes the new token and hands the refresh token back decrypted.
    const claim = await store.beginRefresh("default", "a", {
      owner: "me",
      staleToken: TOKENS[0]!,
      lockUntil: Date.now() + 60_000,
    });
    expect(claim).toEqual({ status: "claimed", token: TOKENS[0]!, refreshToken: REFRESH });
    await store.finishRefresh("default", "a", "me", {
      status: "refreshed",
      token: REFRESHED,
      refreshToken: `${REFRESH}-2`,
    });
    expect(await store.beginRefresh("default", "a", { owner: "me", staleToken: TOKENS[0]!, lockUntil: 0 })).toEqual({
      status: "superseded",
      token: REFRESHED,
    });

    // Equality on encrypted columns still works: the same file is "kept", the refreshed token is found.
    expect((await store.syncPools([{ settings: SETTINGS, keys }])).default).toEqual({
      added: [],
      updated: [],
      removed: [],
      kept: 2,
    });
    expect(await store.findKeyByToken("default", REFRESHED)).toBe("a");
    expect(await store.findKeyByToken("default", TOKENS[0]!)).toBeNull();
    expect((await store.status()).map((k) => k.masked)).toEqual(["sk-…dddd", "sk-…bbbb"]);

    const all = [...TOKENS, REFRESH, REFRESHED, `${REFRESH}-2`];
    expect(existsSync(`${path}-wal`)).toBe(true);
    expect(secretsIn(path, all)).toEqual([]);
    await store.close();
    expect(secretsIn(path, all)).toEqual([]);
  });

  it("encrypts a file written without a key when first opened with one", async () => {
    using dir = tempDir();
    const path = dir.file("state.db");
    const plain = new SqliteStore({ path, clock: systemClock });
    await plain.syncPools([
      { settings: SETTINGS, keys: TOKENS.map((token, i) => ({ id: `k${i}`, token, weight: 1 })) },
    ]);
    await plain.close();
    expect(secretsIn(path, TOKENS)).toEqual(TOKENS);

    const sealed = new SqliteStore({ path, clock: systemClock, cipher: cipher() });
    await sealed.syncPools([
      { settings: SETTINGS, keys: TOKENS.map((token, i) => ({ id: `k${i}`, token, weight: 1 })) },
    ]);
    expect(TOKENS).toContain((await sealed.take("default")).token);
    await sealed.close();
    expect(secretsIn(path, TOKENS)).toEqual([]);
  });

  it("refuses to open with the wrong key, or without one, before reading any token", async () => {
    using dir = tempDir();
    const path = dir.file("state.db");
    const store = new SqliteStore({ path, clock: systemClock, cipher: cipher() });
    await store.syncPools([{ settings: SETTINGS, keys: [{ id: "a", token: TOKENS[0]!, weight: 1 }] }]);
    await store.close();
    expect(() => new SqliteStore({ path, clock: systemClock, cipher: cipher(OTHER_HEX) })).toThrow(ConfigError);
    expect(() => new SqliteStore({ path, clock: systemClock, cipher: cipher(OTHER_HEX) })).toThrow(
      /test key is not the key the state file .* was encrypted with/,
    );
    expect(() => new SqliteStore({ path, clock: systemClock })).toThrow(
      /holds encrypted tokens — set KEYPOOL_MASTER_KEY/,
    );
  });
});

describe("keypool with KEYPOOL_MASTER_KEY", () => {
  const config = "tokens_file: tokens.txt\nstate_file: state.db\ncooldown_sec: 0\nserver:\n  addr: 127.0.0.1:0\n";
  const tokensFile = TOKENS.map((t, i) => `k${i},${t}`).join("\n");

  async function keypool(cwd: string, args: string[], env: Record<string, string>) {
    const proc = Bun.spawn([process.execPath, MAIN, ...args], {
      cwd,
      env: { PATH: process.env.PATH ?? "", ...env },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stdout, stderr, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    return { code, stdout: stdout.trim(), stderr: stderr.trim() };
  }

  it("serves decrypted tokens, exits 2 on a wrong or missing key, and re-encrypts under a new key", async () => {
    using dir = tempDir();
    writeFileSync(dir.file("keypool.yaml"), config);
    writeFileSync(dir.file("tokens.txt"), tokensFile);
    const state = dir.file("state.db");
    {
      await using kp = await spawnDaemon(["serve"], { KEYPOOL_MASTER_KEY: KEY_HEX }, { cwd: dir.path, cleanEnv: true });
      expect(TOKENS).toContain((await (await fetch(`${kp.url}/take`)).json()).token);
      expect(secretsIn(state, TOKENS)).toEqual([]);
      expect(kp.log()).toContain('"msg":"tokens are encrypted at rest","key":"KEYPOOL_MASTER_KEY"');
      kp.proc.kill("SIGTERM");
      expect(await kp.proc.exited).toBe(0);
    }
    expect(secretsIn(state, TOKENS)).toEqual([]);

    const wrong = await keypool(dir.path, ["serve"], { KEYPOOL_MASTER_KEY: OTHER_HEX });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(
      /^config error: KEYPOOL_MASTER_KEY is not the key the state file .*state\.db was encrypted with \(key id \S+, the store's is \S+\) — set KEYPOOL_MASTER_KEY or store\.encryption_key_file/,
    );
    const missing = await keypool(dir.path, ["serve"], {});
    expect([missing.code, missing.stderr]).toEqual([
      2,
      `config error: the state file ${state} holds encrypted tokens — set KEYPOOL_MASTER_KEY or store.encryption_key_file to the key it was encrypted with`,
    ]);

    writeFileSync(dir.file("new.key"), `${OTHER_HEX}\n`);
    const rotated = await keypool(dir.path, ["keys", "reencrypt", "--new-key-file", "new.key", "--json"], {
      KEYPOOL_MASTER_KEY: KEY_HEX,
    });
    expect(rotated.code).toBe(0);
    expect(JSON.parse(rotated.stdout)).toMatchObject({
      state_file: state,
      rewritten: 4,
      key_id: cipher(OTHER_HEX).keyId,
      was_encrypted: true,
    });
    expect(secretsIn(state, TOKENS)).toEqual([]);
    expect((await keypool(dir.path, ["serve"], { KEYPOOL_MASTER_KEY: KEY_HEX })).code).toBe(2);

    // From now on the key file in the config is the key.
    writeFileSync(dir.file("keypool.yaml"), `${config}store:\n  encryption_key_file: new.key\n`);
    await using after = await spawnDaemon(["serve"], {}, { cwd: dir.path, cleanEnv: true });
    expect(TOKENS).toContain((await (await fetch(`${after.url}/take`)).json()).token);
    expect(after.log()).toContain('"key":"store.encryption_key_file');
  });
});
