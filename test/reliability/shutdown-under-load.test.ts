/**
 * Scenario 7: SIGTERM while 100 plain requests and 20 streams are in flight through the gateway.
 * Every one of them must finish whole, none may get a 5xx, and the process must exit 0 with a sound
 * database. (One stream through a drain, the shutdown timeout and a second signal are in
 * test/lifecycle.test.ts.)
 */
import { describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import YAML from "yaml";
import { startFakeUpstream } from "../helpers/fake-upstream";
import { integrityCheck, startServeWithGateway } from "../helpers/lifecycle";
import { tempDir } from "../helpers/temp-dir";
import { canary, leaksOf, tokensLines } from "./_canary";

const PLAIN = 100;
const STREAMS = 20;

describe("scenario 7: SIGTERM under load", () => {
  it("lets 100 requests and 20 streams in flight finish, with no 5xx, then exits 0", async () => {
    const release = Promise.withResolvers<void>();
    const encoder = new TextEncoder();
    await using fake = await startFakeUpstream(async (req) => {
      if (new URL(req.url).pathname === "/v1/stream") {
        const body = new ReadableStream<Uint8Array>({
          async start(controller) {
            controller.enqueue(encoder.encode("data: first\n\n"));
            await release.promise;
            controller.enqueue(encoder.encode("data: last\n\n"));
            controller.close();
          },
        });
        return new Response(body, { headers: { "content-type": "text/event-stream" } });
      }
      await release.promise;
      return Response.json({ ok: true });
    });
    using dir = tempDir();
    const leak = canary("sigterm");
    writeFileSync(
      dir.file("tokens.txt"),
      `a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\nb,sk-test-bbbbbbbbbbbbbbbbbbbbbbbb\n${tokensLines([leak])}`,
    );
    writeFileSync(
      dir.file("keypool.yaml"),
      YAML.stringify({
        tokens_file: "tokens.txt",
        state_file: "state.db",
        cooldown_sec: 0,
        server: { addr: "127.0.0.1:0" },
        upstream: { enabled: true, listen: "127.0.0.1:0", base_url: fake.url, cooldown_sec: 0 },
      }),
    );
    await using daemon = await startServeWithGateway(dir.file("keypool.yaml"));

    const plain = Array.from({ length: PLAIN }, async () => {
      const response = await fetch(`${daemon.gatewayUrl}/v1/chat/completions`, { method: "POST", body: "{}" });
      return { status: response.status, body: await response.text() };
    });
    const opened: Promise<void>[] = [];
    const streams = Array.from({ length: STREAMS }, async () => {
      const first = Promise.withResolvers<void>();
      opened.push(first.promise);
      const response = await fetch(`${daemon.gatewayUrl}/v1/stream`);
      const reader = response.body!.getReader();
      const decoder = new TextDecoder();
      let body = "";
      for (let next = await reader.read(); !next.done; next = await reader.read()) {
        body += decoder.decode(next.value, { stream: true });
        first.resolve();
      }
      return { status: response.status, body };
    });
    // Every request has reached the upstream, and every stream has delivered its first event: all
    // 120 are in flight inside the daemon.
    await fake.wait(PLAIN + STREAMS);
    await Promise.all(opened);
    expect(fake.inFlight).toBe(PLAIN);

    daemon.proc.kill("SIGTERM");
    await daemon.waitForLog(/"msg":"shutting down/);
    release.resolve();

    const answers = await Promise.all([...plain, ...streams]);
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    expect(answers.slice(0, PLAIN).every((a) => a.body === '{"ok":true}')).toBe(true);
    expect(answers.slice(PLAIN).every((a) => a.body === "data: first\n\ndata: last\n\n")).toBe(true);
    expect(await daemon.proc.exited).toBe(0);
    expect(daemon.log()).toContain('"msg":"keypool stopped"');
    expect(daemon.log()).not.toContain("shutdown timeout");
    expect(integrityCheck(dir.file("state.db"))).toBe("ok");
    expect(leaksOf([leak], [daemon.log(), daemon.stdout()])).toEqual([]);
  }, 30_000);
});
