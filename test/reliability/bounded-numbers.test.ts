/**
 * Issue 16, class 1: every number from outside is bounded at the edge. Hostile numbers come from the
 * upstream (Retry-After, rate-limit headers, usage bodies), from clients (release and admin bodies,
 * query strings) and from the operator (config, tokens file, environment). Afterwards the pool still
 * serves, /status, /events and `keypool status` answer, also after a restart, and no message quoted a
 * secret. See docs/limits.md for the table of bounds.
 */
import { describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { configFromEnv } from "../../src/config/env-config";
import { ConfigError } from "../../src/config/errors";
import { loadConfig } from "../../src/config/load";
import { createDaemon } from "../../src/daemon/create-daemon";
import { createLogger } from "../../src/log";
import { MAX_COOLDOWN_MS, MAX_REMAINING, MAX_REQUEST_TOKENS } from "../../src/pool/bounds";
import { startGateway } from "../helpers/gateway-harness";
import { runKeypool } from "../helpers/run-keypool";
import { tempDir } from "../helpers/temp-dir";
import { canary, leaksOf } from "./_canary";

const LEAK = canary("bounds");
const TOKENS = {
  a: "sk-test-aaaaaaaaaaaaaaaaaaaaaaaa",
  b: "sk-test-bbbbbbbbbbbbbbbbbbbbbbbb",
  c: "sk-test-cccccccccccccccccccccccc",
  [LEAK.id]: LEAK.token,
};
const JSON_HEADERS = { "content-type": "application/json" };
/** Slack for the time between a rest being set and the test reading it. */
const NOW_SLACK_MS = 60_000;

/** Upstream answers that once rested keys for billions of hours or broke the store. */
const HOSTILE_429S: Array<Record<string, string>> = [
  { "retry-after": "99999999999999" },
  { "retry-after-ms": "99999999999999999999999" },
  { "retry-after": "Fri, 31 Dec 275759 23:59:59 GMT" },
  { "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "99999999999999h" },
  {
    "anthropic-ratelimit-requests-remaining": "0",
    "anthropic-ratelimit-requests-reset": "+275760-09-13T00:00:00.000Z",
  },
  { "retry-after": `${"9".repeat(400)}` },
];

// biome-ignore lint/suspicious/noExplicitAny: answers of many shapes, each asserted on by the test
async function json(response: Response): Promise<any> {
  return JSON.parse(await response.text());
}

/** Every time in /status and /events is a real time no later than the longest rest from now. */
async function expectSaneTimes(fetchApi: (path: string) => Promise<Response>): Promise<void> {
  const status = await fetchApi("/status");
  expect(status.status).toBe(200);
  const body = await json(status);
  const latest = Date.now() + MAX_COOLDOWN_MS + NOW_SLACK_MS;
  for (const key of body.keys) {
    for (const time of [key.until, key.next_check_at, key.remaining?.reset_at]) {
      if (time !== null && time !== undefined) expect(Date.parse(time)).toBeLessThanOrEqual(latest);
    }
    if (key.remaining?.requests != null) expect(key.remaining.requests).toBeLessThanOrEqual(MAX_REMAINING);
  }
  const events = await fetchApi("/events?limit=1000");
  expect(events.status).toBe(200);
  for (const event of (await json(events)).events)
    if (event.until) expect(Date.parse(event.until)).toBeLessThanOrEqual(latest);
}

/**
 * A gateway whose daemon the test may restart: `restart(run)` stops it and starts another on the same
 * config and state file for `run`. Disposing stops whichever daemon is left running, then the fake.
 */
async function restartableGateway(options: Parameters<typeof startGateway>[0]) {
  const gw = await startGateway(options);
  let running = true;
  return {
    gw,
    async restart(run: (url: string) => Promise<void>): Promise<void> {
      running = false;
      await gw.kp.daemon.stop();
      const logger = createLogger({ level: "warn", format: "json", write: (line) => gw.kp.logs.push(line) });
      const again = await createDaemon(loadConfig(gw.kp.configPath), {
        logger,
        port: 0,
        gateway: "all",
        autoCheck: false,
      });
      await again.start();
      try {
        await run(again.url);
      } finally {
        await again.stop();
      }
    },
    async [Symbol.asyncDispose]() {
      if (running) await gw.kp.daemon.stop();
      await gw.fake.stop();
      gw.kp.dir[Symbol.dispose]();
    },
  };
}

describe("class 1: numbers from the upstream are clamped", () => {
  it("rests a key at most 7 days whatever Retry-After or rate-limit reset says, and /status, /events and keypool status keep answering, also after a restart", async () => {
    let answer = 0;
    // One key per hostile answer, and the canary: one request with enough retries meets them all.
    const tokens = {
      ...Object.fromEntries(HOSTILE_429S.map((_, i) => [`k${i}`, `sk-test-${String(i).repeat(24)}`])),
      [LEAK.id]: LEAK.token,
    };
    await using restartable = await restartableGateway({
      tokens,
      handler: () => {
        const headers = HOSTILE_429S[answer++ % HOSTILE_429S.length]!;
        return Response.json({ error: { message: "slow down", type: "rate_limit" } }, { status: 429, headers });
      },
      upstream: { max_retries: HOSTILE_429S.length },
    });
    const { gw } = restartable;
    const response = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: JSON_HEADERS,
      body: "{}",
    });
    expect(response.status).toBe(429);
    await response.text();
    expect(gw.fake.calls.length).toBe(HOSTILE_429S.length + 1);
    const keys = Object.values(await gw.keys());
    expect(keys.map((k) => k.state)).toEqual(Array(HOSTILE_429S.length + 1).fill("cooling"));
    await expectSaneTimes((path) => gw.kp.fetch(path));

    const cli = await runKeypool(["status", "--url", gw.kp.url]);
    expect({ code: cli.code, stderr: cli.stderr }).toEqual({ code: 0, stderr: "" });
    await restartable.restart(async (url) => {
      await expectSaneTimes((path) => fetch(`${url}${path}`));
      const again = await runKeypool(["status", "--url", url]);
      expect({ code: again.code, stderr: again.stderr }).toEqual({ code: 0, stderr: "" });
    });
    expect(leaksOf([LEAK], [...gw.kp.logs, cli.stdout])).toEqual([]);
  });

  it("counts at most a billion tokens for one answer, and keeps an absurd remaining budget finite", async () => {
    await using gw = await startGateway({
      tokens: TOKENS,
      handler: () =>
        Response.json(
          {
            id: "x",
            usage: {
              prompt_tokens: 1e308,
              // biome-ignore lint/correctness/noPrecisionLoss: 2^53+1 on purpose, as an upstream may send it
              completion_tokens: 9007199254740993,
              prompt_tokens_details: { cached_tokens: 1e300 },
            },
          },
          {
            headers: {
              "x-ratelimit-remaining-requests": "9".repeat(40),
              "x-ratelimit-reset-requests": "99999999999999999h",
            },
          },
        ),
    });
    for (let i = 0; i < 4; i++) {
      const response = await fetch(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        headers: JSON_HEADERS,
        body: "{}",
      });
      expect(response.status).toBe(200);
      await response.text();
    }
    const usage = (await json(await gw.kp.fetch("/status"))).pools.default.usage;
    expect(usage.input_tokens).toBeLessThanOrEqual(4 * MAX_REQUEST_TOKENS);
    expect(usage.output_tokens).toBeLessThanOrEqual(4 * MAX_REQUEST_TOKENS);
    expect(Number.isSafeInteger(usage.input_tokens)).toBe(true);
    await expectSaneTimes((path) => gw.kp.fetch(path));
    // Still serving.
    expect(
      (await fetch(`${gw.url}/v1/chat/completions`, { method: "POST", headers: JSON_HEADERS, body: "{}" })).status,
    ).toBe(200);
  });
});

describe("class 1: numbers from clients are refused out of range", () => {
  it("answers 400 naming the field and its range to a hostile release, admin body or query, and the pool serves on", async () => {
    await using gw = await startGateway({
      tokens: TOKENS,
      handler: () => Response.json({ ok: true }),
      config: undefined,
    });
    const post = (path: string, body: unknown, method = "POST") =>
      gw.kp.fetch(path, { method, headers: JSON_HEADERS, body: JSON.stringify(body) });
    const refusals: Array<[string, Promise<Response>, string]> = [
      [
        "retry_after_sec 1e308",
        post("/release", { id: "a", ok: false, status: 429, retry_after_sec: 1e308 }),
        "retry_after_sec",
      ],
      [
        "retry_after_sec 8 days",
        post("/release", { id: "a", ok: false, status: 429, retry_after_sec: 8 * 86400 }),
        "retry_after_sec",
      ],
      // biome-ignore lint/correctness/noPrecisionLoss: 2^53+1 on purpose, as a client may send it
      ["tokens 2^53+1", post("/release", { id: "a", ok: true, tokens: 9007199254740993 }), "tokens"],
      ["input_tokens 1e15", post("/release", { id: "a", ok: true, input_tokens: 1e15 }), "input_tokens"],
      [
        "weight 1e-320",
        post("/pools/default/keys", { token: "sk-new-000000000000000000001", weight: 1e-320 }),
        "weight",
      ],
      ["weight 0", post("/pools/default/keys", { token: "sk-new-000000000000000000002", weight: 0 }), "weight"],
      ["weight 1e308", post("/pools/default/keys", { token: "sk-new-000000000000000000003", weight: 1e308 }), "weight"],
      ["weight -1", post("/pools/default/keys", { token: "sk-new-000000000000000000004", weight: -1 }), "weight"],
      [
        "limit rpm 1e12",
        post("/pools/default/keys", { token: "sk-new-000000000000000000005", limits: { rpm: 1e12 } }),
        "limits.rpm",
      ],
      ["patch weight 1e-320", post("/pools/default/keys/x", { weight: 1e-320 }, "PATCH"), "weight"],
      ["wait 1e999", gw.kp.fetch("/take?wait=1e999"), "wait"],
      ["wait -1", gw.kp.fetch("/take?wait=-1"), "wait"],
      ["limit 1e999", gw.kp.fetch("/events?limit=1e999"), "limit"],
      ["since 1e20", gw.kp.fetch("/events?since=100000000000000000000"), "since"],
      ["since year 275760", gw.kp.fetch("/events?since=%2B275760-09-13T00:00:00Z"), "since"],
    ];
    const answers = await Promise.all(
      refusals.map(async ([what, pending, field]) => {
        const response = await pending;
        const body = await json(response);
        return { what, status: response.status, namesField: String(body.error?.message).startsWith(`${field}:`) };
      }),
    );
    expect(answers.filter((a) => a.status !== 400 || !a.namesField)).toEqual([]);

    // The upper bounds themselves are accepted, and the key that got the longest rest comes back in view.
    const longest = await post("/release", { id: "a", ok: false, status: 429, retry_after_sec: 7 * 86400 });
    expect(longest.status).toBe(200);
    const added = await post("/pools/default/keys", {
      id: "light",
      token: "sk-new-000000000000000000009",
      weight: 0.001,
    });
    expect(added.status).toBe(200);
    for (let i = 0; i < 5; i++) expect((await fetch(`${gw.url}/v1/models`)).status).toBe(200);
    await expectSaneTimes((path) => gw.kp.fetch(path));
  });

  it("never echoes a token sent in a wrongly typed field of an admin or release body", async () => {
    await using gw = await startGateway({ tokens: TOKENS, handler: () => Response.json({ ok: true }) });
    const texts: string[] = [];
    for (const [path, body] of [
      ["/pools/default/keys", { token: [LEAK.token] }],
      ["/pools/default/keys", { token: { value: LEAK.token } }],
      ["/pools/default/keys", { token: "sk-x-000000000000000000", weight: LEAK.token }],
      ["/pools/default/keys", { token: "sk-x-000000000000000000", limits: { rpm: LEAK.token } }],
      ["/release", { id: LEAK.token, ok: LEAK.token }],
      ["/release", { id: "a", ok: false, status: LEAK.token }],
    ] as const) {
      const response = await gw.kp.fetch(path, { method: "POST", headers: JSON_HEADERS, body: JSON.stringify(body) });
      expect(response.status).toBe(400);
      texts.push(await response.text());
    }
    const since = await gw.kp.fetch(`/events?since=${LEAK.token.slice(0, 40)}`);
    expect(since.status).toBe(400);
    texts.push(await since.text());
    expect(leaksOf([LEAK], [...texts, ...gw.kp.logs])).toEqual([]);
  });
});

describe("class 1: numbers from the operator are refused at load with exit 2", () => {
  /** `keypool config validate` on a config and tokens file; its exit code and everything it printed. */
  async function check(yaml: string, tokens: string) {
    using dir = tempDir();
    writeFileSync(dir.file("keypool.yaml"), yaml);
    writeFileSync(dir.file("tokens.txt"), tokens);
    const run = await runKeypool(["config", "validate", "-c", dir.file("keypool.yaml")]);
    return { code: run.code, out: run.stdout + run.stderr };
  }

  it("refuses every config number past its range, naming the field and the range", async () => {
    const fields = [
      "cooldown_sec: 1e308",
      "lease_ttl_sec: 100000000000",
      "recheck_interval_sec: 99999999999",
      "rpm: 1.0e+300",
      "tpm: 9007199254740993",
      "max_concurrency: 1e12",
      "backoff: { rate_limit: { base_sec: 1e20, factor: 1e300 } }",
      "session: { ttl_sec: 1e15 }",
      "upstream: { timeout_sec: 1e10, max_retries: 1e6, max_body_bytes: 1e300, quarantine_sec: .inf }",
      "check: { url: 'https://example.com', timeout_sec: 1e12, concurrency: 1e9 }",
      "prices: { m: { input_per_mtok: 1e300 } }",
    ];
    const { code, out } = await check(
      `tokens_file: tokens.txt\n${fields.join("\n")}\n`,
      "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\n",
    );
    expect(code).toBe(2);
    for (const path of [
      "cooldown_sec",
      "lease_ttl_sec",
      "recheck_interval_sec",
      "rpm",
      "tpm",
      "max_concurrency",
      "backoff.rate_limit.base_sec",
      "backoff.rate_limit.factor",
      "session.ttl_sec",
      "upstream.timeout_sec",
      "upstream.max_retries",
      "upstream.max_body_bytes",
      "upstream.quarantine_sec",
      "check.timeout_sec",
      "check.concurrency",
      "prices.m.input_per_mtok",
    ]) {
      expect(out).toMatch(new RegExp(`${path.replaceAll(".", "\\.")}: expected .*≤ \\d+`));
    }
  });

  it("refuses a tokens-file weight that is subnormal, hex, infinite or huge, without echoing a refresh token in that column", async () => {
    const refresh = "rt-9f8e7d6c";
    const tokens = [
      "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa,1e-320",
      "b,sk-test-bbbbbbbbbbbbbbbbbbbbbbbb,0x10",
      "c,sk-test-cccccccccccccccccccccccc,1e999",
      "d,sk-test-dddddddddddddddddddddddd,Infinity",
      "e,sk-test-eeeeeeeeeeeeeeeeeeeeeeee,1e6",
      `f,sk-test-ffffffffffffffffffffffff,${refresh}`,
    ].join("\n");
    const { code, out } = await check("tokens_file: tokens.txt\nrotation: weighted\n", `${tokens}\n`);
    expect(code).toBe(2);
    for (let line = 1; line <= 6; line++) expect(out).toContain(`tokens.txt:${line}: weight`);
    expect(out).not.toContain(refresh);
  });

  it("never quotes a pool's token or the API key from a wrongly typed field", async () => {
    const short = `sk-${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`;
    const yaml = [
      "tokens_file: tokens.txt",
      `max_concurrency: ${short}`,
      `rotation: ${short}`,
      "server: { api_key: 123456789012345 }",
      `upstream: { listen: ${short} }`,
    ].join("\n");
    const { code, out } = await check(`${yaml}\n`, `a,${short}\n`);
    expect(code).toBe(2);
    expect(out).toContain("max_concurrency: expected");
    expect(out).not.toContain(short.slice(-12));
    expect(out).not.toContain("123456789012345");
  });

  it("refuses a hex or out-of-range number from the environment, naming the variable", () => {
    const env = { KEYPOOL_POOL_ENVPOOL_KEYS: "sk-env-000000000000000000000001" };
    const issuesOf = (extra: Record<string, string>) => {
      try {
        configFromEnv({ ...env, ...extra });
        return [];
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        return error.issues;
      }
    };
    expect(issuesOf({ KEYPOOL_POOL_ENVPOOL_COOLDOWN_SEC: "0x10" }).join("\n")).toContain(
      "KEYPOOL_POOL_ENVPOOL_COOLDOWN_SEC",
    );
    expect(issuesOf({ KEYPOOL_POOL_ENVPOOL_COOLDOWN_SEC: "1e999" }).join("\n")).toContain(
      "KEYPOOL_POOL_ENVPOOL_COOLDOWN_SEC",
    );
    expect(issuesOf({ KEYPOOL_POOL_ENVPOOL_COOLDOWN_SEC: "99999999999" }).join("\n")).toContain("≤ 604800");
    expect(issuesOf({ KEYPOOL_POOL_ENVPOOL_COOLDOWN_SEC: "30" })).toEqual([]);
  });
});

describe("class 1: numbers on the command line are refused with exit 2", () => {
  it.each([
    [
      "keys add --weight 1e-320",
      ["keys", "add", "--url", "http://127.0.0.1:9", "--token-env", "KP_TEST_TOKEN", "--weight", "1e-320"],
      "--weight",
    ],
    [
      "keys add --weight 0x10",
      ["keys", "add", "--url", "http://127.0.0.1:9", "--token-env", "KP_TEST_TOKEN", "--weight", "0x10"],
      "--weight",
    ],
    [
      "keys add --rpm 1e12",
      ["keys", "add", "--url", "http://127.0.0.1:9", "--token-env", "KP_TEST_TOKEN", "--rpm", "1e12"],
      "--rpm",
    ],
    [
      "status --watch 1e10 (past setTimeout's range)",
      ["status", "--url", "http://127.0.0.1:9", "--watch", "1e10"],
      "--watch",
    ],
  ])("%s", async (_, args, flag) => {
    const run = await runKeypool(args, { env: { KP_TEST_TOKEN: "sk-cli-00000000000000000000" } });
    expect({ code: run.code, names: run.stderr.includes(flag) }).toEqual({ code: 2, names: true });
  });
});
