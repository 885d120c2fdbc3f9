import { describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import YAML from "yaml";
import { deadUrl, startFakeUpstream } from "./helpers/fake-upstream";
import { spawnProxy } from "./helpers/gateway-process";
import { type ControlledStream, controlledStream, openaiChunks, readFirstChunk } from "./helpers/gateway-streams";
import { tempDir } from "./helpers/temp-dir";

// Random per run, so nothing can contain one by accident. The middle of each is searched for too:
// a token cut short or wrapped must not slip through.
const canary = (name: string) => `sk-canary-${name}-${crypto.randomUUID().replaceAll("-", "")}`;
const HEADER_TOKENS = [canary("h1"), canary("h2")];
const QUERY_TOKENS = [canary("q1"), canary("q2")];
const DEAD_TOKENS = [canary("d1")];
const ALL = [...HEADER_TOKENS, ...QUERY_TOKENS, ...DEAD_TOKENS];

/** Streams the test breaks once the client has the first event; set before each /v1/break request. */
let breaking: ControlledStream | undefined;

/** The upstream's behaviour by path: answers, streams, breaks mid-stream, rate-limits, or rejects every key. */
function upstreamByPath(req: Request): Response {
  const path = new URL(req.url).pathname;
  if (path === "/v1/revoked")
    return Response.json({ error: { message: "Incorrect API key provided." } }, { status: 401 });
  if (path === "/v1/limited")
    return Response.json({ error: { message: "slow down" } }, { status: 429, headers: { "retry-after": "0" } });
  if (path === "/v1/break") return breaking!.respond(req);
  return Response.json({ ok: true });
}

/** Everything a client can see of an answer: status line, headers and as much body as arrived. */
async function seen(response: Promise<Response>): Promise<string> {
  const r = await response;
  let body = "";
  try {
    body = await r.text();
  } catch (error) {
    body = `<body broke: ${String(error)}>`;
  }
  return `${r.status} ${r.statusText}\n${JSON.stringify([...r.headers])}\n${body}`;
}

describe("gateway secrets", () => {
  it("never puts a pooled token in a log line or in anything a client receives", async () => {
    await using fake = await startFakeUpstream(upstreamByPath);
    using dir = tempDir();
    writeFileSync(dir.file("h.txt"), HEADER_TOKENS.join("\n"));
    writeFileSync(dir.file("q.txt"), QUERY_TOKENS.join("\n"));
    writeFileSync(dir.file("d.txt"), DEAD_TOKENS.join("\n"));
    const listen = "127.0.0.1:0";
    const config = {
      state_file: "state.db",
      cooldown_sec: 0,
      server: { addr: "127.0.0.1:0" },
      pools: {
        h: { tokens_file: "h.txt", upstream: { listen, base_url: fake.url, cooldown_sec: 0 } },
        q: { tokens_file: "q.txt", upstream: { listen, base_url: fake.url, cooldown_sec: 0, auth_query: "key" } },
        d: { tokens_file: "d.txt", upstream: { listen, base_url: await deadUrl(), max_body_bytes: 16 } },
      },
    };
    writeFileSync(dir.file("keypool.yaml"), YAML.stringify(config));
    const proxy = await spawnProxy(dir.file("keypool.yaml"));
    const gw = proxy.gatewayUrl;

    const answers: string[] = [];
    for (const pool of ["h", "q"]) {
      answers.push(await seen(fetch(`${gw}/${pool}/v1/ok?key=client-sent`, { method: "POST", body: "{}" })));
      answers.push(await seen(fetch(`${gw}/${pool}/v1/limited?key=client-sent`)));

      breaking = controlledStream(openaiChunks(["a"]));
      const broken = await fetch(`${gw}/${pool}/v1/break?key=client-sent`);
      const { text, reader } = await readFirstChunk(broken.body!);
      breaking.fail();
      const end = await reader.read().then(
        () => "ended",
        (error: unknown) => `broke: ${String(error)}`,
      );
      answers.push(`${broken.status}\n${JSON.stringify([...broken.headers])}\n${text}\n${end}`);
    }
    // Revoke every key of both pools: the last 401 comes back, then 503 once none is left.
    for (const pool of ["h", "q"]) {
      for (let i = 0; i < 2; i++) answers.push(await seen(fetch(`${gw}/${pool}/v1/revoked`)));
    }
    answers.push(await seen(fetch(`${gw}/d/v1/ok`)));
    answers.push(await seen(fetch(`${gw}/d/v1/ok`, { method: "POST", body: "x".repeat(64) })));
    answers.push(await seen(fetch(`${proxy.apiUrl}/status`)));

    const { code, output } = await proxy.stop();
    expect(code).toBe(0);

    // The checks mean something only if the tokens did reach the upstream and the scenarios happened.
    const upstreamSaw = JSON.stringify(fake.calls);
    expect([...HEADER_TOKENS, ...QUERY_TOKENS].every((t) => upstreamSaw.includes(t))).toBe(true);
    expect(answers.map((a) => Number(a.slice(0, 3)))).toEqual([
      200, 429, 200, 200, 429, 200, 401, 503, 401, 503, 502, 413, 200,
    ]);
    expect(output).toContain('"msg":"gateway request"');

    const leaks = ALL.flatMap((token) => [token, token.slice(-24)]).filter(
      (needle) => output.includes(needle) || answers.some((a) => a.includes(needle)),
    );
    expect(leaks).toEqual([]);
  });
});
