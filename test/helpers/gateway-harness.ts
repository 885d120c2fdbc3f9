import YAML from "yaml";
import { type KeyBehaviour, simulatedUpstream } from "../../src/demo/simulated-upstream";
import type { DaemonOptions } from "../../src/daemon/create-daemon";
import { type TestDaemon, startTestDaemon } from "./daemon";
import { type FakeHandler, type FakeUpstream, startFakeUpstream } from "./fake-upstream";

/**
 * A real daemon with its gateway on port 0, in front of a fake upstream on port 0.
 *
 *   await using gw = await startGateway({ handler: () => Response.json({ ok: true }) });
 *   await fetch(`${gw.url}/v1/models`);
 *   expect((await gw.key("a")).state).toBe("live");
 */
export interface GatewayUnderTest extends AsyncDisposable {
  /** The gateway's base URL (what an SDK's baseURL points at, plus `/v1` for OpenAI). */
  url: string;
  fake: FakeUpstream;
  kp: TestDaemon;
  /** Every key's /status entry, by id. */
  keys(): Promise<Record<string, KeyStatusJson>>;
  key(id: string): Promise<KeyStatusJson>;
}

/** A key as GET /status shows it (the fields these tests read). */
export interface KeyStatusJson {
  id: string;
  pool: string;
  state: string;
  reason: string | null;
  /** ISO time the current state ends by itself. */
  until: string | null;
  requests: number;
  errors: number;
  in_flight: number;
  /** Sticky sessions whose own key this is. */
  sessions: number;
}

export const TOKENS = {
  a: "sk-test-aaaaaaaaaaaaaaaaaaaaaaaa",
  b: "sk-test-bbbbbbbbbbbbbbbbbbbbbbbb",
  c: "sk-test-cccccccccccccccccccccccc",
};

export interface GatewayOptions {
  handler?: FakeHandler;
  /** id → token; defaults to TOKENS. */
  tokens?: Record<string, string>;
  /** Extra `upstream:` keys (snake_case, as in the YAML). */
  upstream?: Record<string, unknown>;
  /** Replaces the whole config; gets the fake's URL. `tokens.txt` holds `tokens`. */
  config?: (fakeUrl: string) => Record<string, unknown>;
  /** More daemon options, e.g. a manual `clock`. */
  daemon?: DaemonOptions;
}

export async function startGateway(options: GatewayOptions = {}): Promise<GatewayUnderTest> {
  const fake = await startFakeUpstream(options.handler);
  const config = options.config?.(fake.url) ?? {
    tokens_file: "tokens.txt",
    state_file: "state.db",
    // Takes must not rest keys: tests reuse them back to back.
    cooldown_sec: 0,
    server: { addr: "127.0.0.1:0" },
    upstream: { listen: "127.0.0.1:0", base_url: fake.url, cooldown_sec: 0, ...options.upstream },
  };
  const tokens = Object.entries(options.tokens ?? TOKENS)
    .map(([id, token]) => `${id},${token}`)
    .join("\n");
  let kp: TestDaemon;
  try {
    kp = await startTestDaemon(YAML.stringify(config), `${tokens}\n`, {
      gateway: "all",
      autoCheck: false,
      ...options.daemon,
    });
  } catch (error) {
    await fake.stop();
    throw error;
  }
  const keys = async () => {
    const body = await (await kp.fetch("/status")).json();
    return Object.fromEntries((body.keys as KeyStatusJson[]).map((k) => [k.id, k]));
  };
  return {
    url: Object.values(kp.daemon.gatewayUrls)[0]!,
    fake,
    kp,
    keys,
    async key(id) {
      const found = (await keys())[id];
      if (!found) throw new Error(`no key ${id} in /status`);
      return found;
    },
    async [Symbol.asyncDispose]() {
      // The fake first: a request parked in a never-answering handler must not hold the daemon's stop.
      await fake.stop();
      await kp[Symbol.asyncDispose]();
    },
  };
}

/** Which key (by id) a recorded upstream call used, from its Bearer header. */
export function keyOfCall(
  call: { headers: Record<string, string> },
  tokens: Record<string, string> = TOKENS,
): string | undefined {
  const auth = call.headers.authorization ?? call.headers["x-api-key"];
  return Object.entries(tokens).find(([, token]) => auth === `Bearer ${token}` || auth === token)?.[0];
}

/**
 * The demo's simulated OpenAI/Anthropic API as a fake-upstream handler. The fake has already read
 * the body, so the simulator gets a fresh request carrying the recorded one.
 */
export function simulated(
  behaviour: Record<string, KeyBehaviour> = { a: "ok", b: "ok", c: "ok" },
  tokens = TOKENS,
): FakeHandler {
  const keys = Object.fromEntries(
    Object.entries(behaviour).map(([id, how]) => [tokens[id as keyof typeof tokens], how]),
  );
  const answer = simulatedUpstream({ keys });
  return (req, call) =>
    answer(new Request(req.url, { method: req.method, headers: req.headers, body: call.body || undefined }));
}
