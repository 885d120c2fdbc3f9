/**
 * Scenario 5: a client reading slowly from a fast, large stream. The gateway must not buffer what
 * the client has not read: backpressure has to reach the upstream, so the daemon's memory stays
 * flat however much the upstream could send. The daemon runs as its own process (`keypool proxy`)
 * so its RSS is its own; the client is a raw socket that stops reading, as a slow reader does.
 */
import { describe, expect, it } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import YAML from "yaml";
import { startFakeUpstream } from "../helpers/fake-upstream";
import { spawnProxy } from "../helpers/gateway-process";
import { tempDir } from "../helpers/temp-dir";
import { canary, leaksOf, tokensLines } from "./_canary";

const CHUNK = new Uint8Array(64 * 1024).fill("x".charCodeAt(0));
/** What the upstream would send if nothing held it back: far more than any buffer in the path. */
const UPSTREAM_TOTAL = 1024 * 1024 * 1024;
const MB = 1024 * 1024;

function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/**
 * A client that sends one request, then reads one burst of bytes every `everyMs` and otherwise
 * keeps its socket paused, so the kernel's window closes and the sender has to wait.
 */
async function slowReader(url: string, path: string, everyMs: number) {
  const { hostname, port } = new URL(url);
  let received = 0;
  let head = "";
  const socket = await Bun.connect({
    hostname,
    port: Number(port),
    socket: {
      data(s, data) {
        received += data.length;
        if (head.length < 200) head += data.toString("latin1").slice(0, 200);
        s.pause();
      },
    },
  });
  socket.write(`GET ${path} HTTP/1.1\r\nhost: ${hostname}\r\naccept: text/event-stream\r\n\r\n`);
  const timer = setInterval(() => socket.resume(), everyMs);
  return {
    get received() {
      return received;
    },
    get head() {
      return head;
    },
    close() {
      clearInterval(timer);
      socket.terminate();
    },
  };
}

describe("scenario 5: a slow client on a fast stream", () => {
  it("holds the upstream back instead of buffering: the daemon's RSS stays flat", async () => {
    let produced = 0;
    await using fake = await startFakeUpstream((req) => {
      if (new URL(req.url).pathname !== "/v1/stream") return Response.json({ data: [] });
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (produced >= UPSTREAM_TOTAL) return controller.close();
          produced += CHUNK.length;
          controller.enqueue(CHUNK);
        },
      });
      return new Response(body, { headers: { "content-type": "text/event-stream" } });
    });
    using dir = tempDir();
    const leak = canary("slow");
    writeFileSync(dir.file("tokens.txt"), `a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\n${tokensLines([leak])}`);
    writeFileSync(
      dir.file("keypool.yaml"),
      YAML.stringify({
        tokens_file: "tokens.txt",
        state_file: "state.db",
        cooldown_sec: 0,
        server: { addr: "127.0.0.1:0" },
        upstream: { listen: "127.0.0.1:0", base_url: fake.url },
      }),
    );
    await using proxy = await spawnProxy(dir.file("keypool.yaml"));
    const pid = proxy.proc.pid;

    // Warm the daemon up (JIT, first allocations) before the baseline is taken.
    for (let i = 0; i < 20; i++) expect((await fetch(`${proxy.gatewayUrl}/v1/models`)).status).toBe(200);
    Bun.gc(true);
    const baseline = rssOf(pid);

    // The upstream is local and would deliver a gigabyte in a second or two; the client reads one
    // socket buffer's worth every 100 ms.
    const client = await slowReader(proxy.gatewayUrl, "/v1/stream", 100);
    const samples: number[] = [];
    for (let i = 0; i < 15; i++) {
      await Bun.sleep(200);
      samples.push(rssOf(pid));
    }
    const peakGrowth = Math.max(...samples) - baseline;
    console.log(
      `slow client, 3 s: upstream produced ${(produced / MB).toFixed(1)} MB, client read ${(client.received / MB).toFixed(1)} MB, ` +
        `daemon RSS ${(baseline / MB).toFixed(0)} MB → peak +${(peakGrowth / MB).toFixed(1)} MB (samples ${samples.map((s) => ((s - baseline) / MB).toFixed(0)).join(" ")})`,
    );
    expect(client.head).toStartWith("HTTP/1.1 200");
    // What the upstream got ahead of the client is what sits in socket buffers on the way — a few MB,
    // not the gigabyte it would have sent unchecked.
    expect(produced - client.received).toBeLessThan(48 * MB);
    expect(peakGrowth).toBeLessThan(64 * MB);
    client.close();

    const { code, output } = await proxy.stop();
    expect(code).toBe(0);
    expect(leaksOf([leak], [output])).toEqual([]);
  }, 30_000);
});
