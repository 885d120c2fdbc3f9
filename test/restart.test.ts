import { describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { jsonPost } from "./helpers/daemon";
import { spawnDaemon } from "./helpers/spawn-daemon";
import { tempDir } from "./helpers/temp-dir";

const CONFIG =
  "tokens_file: tokens.txt\nstate_file: state/keypool.db\ncooldown_sec: 600\nserver:\n  addr: 127.0.0.1:0\n";
const TOKENS =
  "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\nb,sk-test-bbbbbbbbbbbbbbbbbbbbbbbb\nc,sk-test-cccccccccccccccccccccccc\n";

describe("state across kill -9", () => {
  it("keeps health, cooldowns, counters and open leases", async () => {
    using dir = tempDir();
    writeFileSync(dir.file("keypool.yaml"), CONFIG);
    writeFileSync(dir.file("tokens.txt"), TOKENS);
    const args = ["serve", "-c", dir.file("keypool.yaml")];

    // Everything but the answer's own time must survive.
    const state = async (url: string) => {
      const { timestamp: _, ...status } = await (await fetch(`${url}/status`)).json();
      return status;
    };
    let before: unknown;
    let heldLease: string;
    {
      await using first = await spawnDaemon(args, { NO_COLOR: "1" });
      const taken = await (await fetch(`${first.url}/take`)).json();
      heldLease = taken.lease;
      await fetch(`${first.url}/release`, jsonPost({ id: "b", ok: false, status: 401 }));
      before = await state(first.url);
      first.proc.kill("SIGKILL");
      expect(await first.proc.exited).not.toBe(0);
    }

    await using second = await spawnDaemon(args, { NO_COLOR: "1" });
    expect(await state(second.url)).toEqual(before);
    const release = await fetch(`${second.url}/release`, jsonPost({ lease: heldLease, ok: true }));
    expect(release.status).toBe(200);
  });
});
