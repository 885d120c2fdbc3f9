import { describe, expect, it } from "bun:test";
import { ManualClock } from "../src/pool/clock";
import { startTestDaemon } from "./helpers/daemon";
import { runKeypool } from "./helpers/run-keypool";

// keypool take --model and keypool release --model against a running daemon.
const NOW = Date.UTC(2026, 0, 1, 12);
const TOKENS = "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\nb,sk-test-bbbbbbbbbbbbbbbbbbbbbbbb\n";
const CONFIG = "tokens_file: tokens.txt\nstate_file: state.db\ncooldown_sec: 0\nserver:\n  addr: 127.0.0.1:0\n";

const keypool = (...args: string[]) => runKeypool(args);

describe("keypool take and release with --model", () => {
  it("rests only that model on the key, and says so", async () => {
    await using kp = await startTestDaemon(CONFIG, TOKENS, {
      clock: new ManualClock(NOW),
      random: () => 0,
      autoCheck: false,
    });
    const url = ["--url", kp.url];
    const take = await keypool("take", ...url, "--model", "m-big", "--json");
    expect(take.code).toBe(0);
    const lease = JSON.parse(take.stdout) as { id: string; lease: string };

    const release = await keypool("release", ...url, "--lease", lease.lease, "--status", "429", "--model", "m-big");
    const until = new Date(NOW + 60_000).toISOString();
    expect(release.code).toBe(0);
    expect(release.stdout.trim()).toMatch(
      new RegExp(`^released ${lease.id} \\(pool default\\): (unknown|live); m-big cooling until ${until}$`),
    );

    // The other key serves m-big meanwhile.
    const big = JSON.parse((await keypool("take", ...url, "--model", "m-big", "--json")).stdout) as { id: string };
    expect(big.id).not.toBe(lease.id);
  });

  it("refuses a model that is not a model name, with the daemon's message", async () => {
    await using kp = await startTestDaemon(CONFIG, TOKENS, { autoCheck: false });
    const take = await keypool("take", "--url", kp.url, "--model", "gpt 4o");
    expect([take.code, take.stderr.trim()]).toEqual([
      1,
      "keypool: BAD_REQUEST: model: not a model name — give the name the provider uses (letters, digits and " +
        ". _ : / @ + -, starting with a letter or digit), e.g. gpt-4o-mini",
    ]);
  });
});
