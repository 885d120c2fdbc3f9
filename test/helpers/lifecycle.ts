import { Database } from "bun:sqlite";
import { expect } from "bun:test";
import { writeFileSync } from "node:fs";
import type { FakeUpstream } from "./fake-upstream";
import { type SpawnOptions, spawnDaemon } from "./spawn-daemon";
import type { tempDir } from "./temp-dir";

/* Shared by the shutdown tests on source (test/lifecycle.test.ts) and on the binary (test/e2e). */

const encoder = new TextEncoder();

/** An SSE upstream that sends its first event at once and the last only when the test says so. */
export function heldStream() {
  const finish = Promise.withResolvers<void>();
  const handler = () =>
    new Response(
      new ReadableStream({
        async start(controller) {
          controller.enqueue(encoder.encode("data: first\n\n"));
          await finish.promise;
          controller.enqueue(encoder.encode("data: last\n\n"));
          controller.close();
        },
      }),
      { headers: { "content-type": "text/event-stream" } },
    );
  return { handler, finish: () => finish.resolve() };
}

export function writeGatewayConfig(dir: ReturnType<typeof tempDir>, upstream: FakeUpstream, extra = ""): string {
  writeFileSync(dir.file("tokens.txt"), "k1,sk-lifecycle-aaaaaaaaaaaaaaaa\n");
  const path = dir.file("keypool.yaml");
  writeFileSync(
    path,
    `tokens_file: tokens.txt
state_file: state.db
server:
  addr: 127.0.0.1:0
upstream:
  enabled: true
  listen: 127.0.0.1:0
  base_url: ${upstream.url}
${extra}`,
  );
  return path;
}

/** `keypool serve` with a gateway in front of `upstream`; resolves once both listen. */
export async function startServeWithGateway(configPath: string, options: SpawnOptions = {}) {
  const daemon = await spawnDaemon(["serve", "-c", configPath], {}, options);
  const gatewayUrl = JSON.parse(await daemon.waitForLog(/"msg":"keypool gateway listening"/)).url as string;
  return Object.assign(daemon, { gatewayUrl });
}

/**
 * Opens a streaming request through the gateway and reads its first event; `rest` settles with the
 * whole text, or the error that cut it (never rejects, since the cut may come before a test awaits it).
 */
export async function openStream(gatewayUrl: string) {
  const response = await fetch(`${gatewayUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "m", stream: true }),
  });
  expect(response.status).toBe(200);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = decoder.decode((await reader.read()).value);
  const rest = (async () => {
    try {
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read())
        text += decoder.decode(chunk.value);
      return { text };
    } catch (error) {
      return { text, error: error as Error };
    }
  })();
  return { first: text, rest };
}

export function integrityCheck(path: string): string {
  const db = new Database(path, { readonly: true });
  try {
    return (db.query("PRAGMA integrity_check").get() as { integrity_check: string }).integrity_check;
  } finally {
    db.close();
  }
}
