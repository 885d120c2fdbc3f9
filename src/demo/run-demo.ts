import type { Config } from "../config/types";
import { type Daemon, createDaemon } from "../daemon/create-daemon";
import { listenerErrorOptions } from "../daemon/listener-errors";
import { uncaughtGatewayAnswer } from "../gateway/errors";
import { createLogger } from "../log";
import { type KeyBehaviour, simulatedUpstream } from "./simulated-upstream";

export interface DemoOptions {
  stateFile: string;
  apiPort: number;
  gatewayPort: number;
  requests: number;
  print: (line: string) => void;
}

export interface RunningDemo {
  daemon: Daemon;
  upstreamUrl: string;
  gatewayUrl: string;
  stop(): Promise<void>;
}

/** Three demo keys: one answers, one is rate-limited, one was revoked. */
const DEMO_KEYS: Array<{ id: string; token: string; behaviour: KeyBehaviour; story: string }> = [
  {
    id: "demo-limited",
    token: "sk-demo-limited-0000000000000002",
    behaviour: "rate_limited",
    story: "answers 429 (rate limited)",
  },
  {
    id: "demo-revoked",
    token: "sk-demo-revoked-0000000000000003",
    behaviour: "revoked",
    story: "answers 401 (revoked)",
  },
  { id: "demo-ok", token: "sk-demo-healthy-0000000000000001", behaviour: "ok", story: "answers" },
];

/**
 * Starts a simulated OpenAI-compatible upstream, a pool over it and the gateway, then sends a few
 * requests through the gateway and tells what happened to each key.
 */
export async function runDemo(options: DemoOptions): Promise<RunningDemo> {
  const logger = createLogger({ level: "warn" });
  const upstream = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: simulatedUpstream({
      keys: Object.fromEntries(DEMO_KEYS.map((k) => [k.token, k.behaviour])),
      retryAfterSec: 60,
    }),
    // It speaks the OpenAI API, so it fails like the gateway does: JSON, never Bun's HTML error page.
    ...listenerErrorOptions(uncaughtGatewayAnswer(logger)),
  });
  const upstreamUrl = `http://127.0.0.1:${upstream.port}`;
  const daemon = await createDaemon(demoConfig(options, upstreamUrl), { logger, gateway: "all" });
  try {
    await daemon.start();
  } catch (error) {
    upstream.stop(true);
    throw error;
  }
  const gatewayUrl = Object.values(daemon.gatewayUrls)[0]!;
  const { print } = options;

  print("keypool demo");
  print(
    `  simulated upstream  ${upstreamUrl}   (OpenAI-compatible; ${DEMO_KEYS.map((k) => `${k.id} ${k.story}`).join(", ")})`,
  );
  print(`  gateway             ${gatewayUrl}   (point an OpenAI client here, with no key)`);
  print(`  broker API          ${daemon.url}   (GET /take, POST /release, GET /status)`);
  print("");

  for (let i = 1; i <= options.requests; i++) {
    const response = await fetch(`${gatewayUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "sim-1", messages: [{ role: "user", content: `request ${i}` }] }),
    });
    const body = (await response.json()) as {
      choices?: Array<{ message: { content: string } }>;
      error?: { message: string };
    };
    const key = response.headers.get("x-keypool-key") ?? "none";
    const attempts = response.headers.get("x-keypool-attempts") ?? "0";
    const answer = body.choices?.[0]?.message.content ?? body.error?.message ?? "";
    print(`request ${i}: HTTP ${response.status} from key ${key} after ${attempts} attempt(s): ${answer}`);
  }

  print("");
  print("what keypool learned:");
  for (const row of await daemon.store.status("demo")) {
    const until = row.until ? ` until ${new Date(row.until).toISOString()}` : "";
    print(`  ${row.id.padEnd(13)} ${row.state.padEnd(12)} ${row.reason ?? ""}${until}`);
    // A rate limit on a request that names a model rests the key for that model only.
    for (const [model, pair] of Object.entries(row.models)) {
      const ends = new Date(pair.until).toISOString();
      print(`  ${"".padEnd(13)} ${`${pair.state} for ${model}`.padEnd(12)} ${pair.reason ?? ""} until ${ends}`);
    }
  }
  print("");
  print("try it yourself:");
  print(
    `  curl -s ${gatewayUrl}/v1/chat/completions -H 'content-type: application/json' -d '{"model":"sim-1","messages":[{"role":"user","content":"hi"}]}'`,
  );
  print(`  curl -s ${daemon.url}/status`);
  print("Ctrl-C to stop.");

  return {
    daemon,
    upstreamUrl,
    gatewayUrl,
    async stop() {
      await daemon.stop();
      upstream.stop(true);
    },
  };
}

function demoConfig(options: DemoOptions, upstreamUrl: string): Config {
  return {
    server: { host: "127.0.0.1", port: options.apiPort },
    stateFile: options.stateFile,
    pools: {
      demo: {
        name: "demo",
        keys: DEMO_KEYS.map(({ id, token }) => ({ id, token, weight: 1 })),
        // Round robin so the first request meets the bad keys before the good one.
        rotation: "round_robin",
        cooldownSec: 0,
        recheckIntervalSec: 300,
        leaseTtlSec: 300,
        upstream: {
          enabled: true,
          listen: `127.0.0.1:${options.gatewayPort}`,
          baseUrl: upstreamUrl,
          authHeader: "Authorization",
          authTemplate: "Bearer {token}",
          retryOn: [401, 403, 429, 500, 502, 503, 504],
          maxRetries: 2,
          quarantineSec: 300,
          timeoutSec: 60,
          maxBodyBytes: 32 * 1024 * 1024,
          models: [],
        },
      },
    },
  };
}
