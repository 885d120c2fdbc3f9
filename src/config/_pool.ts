import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { MAX_BODY_BYTES_LIMIT, MAX_KEY_LIMIT, MAX_RETRIES, MAX_SMALL_COUNT } from "../pool/bounds";
import { readCheckCommand } from "./_command-line";
import { readBackoff, readClassify } from "./_failure-policy";
import { MODEL_AWARE_POOL_KEYS, readModelAware } from "./_model-aware";
import { readBudget } from "./_budget";
import { readFallback, readModelMap, readSession } from "./_routing";
import { describe, readAddr, type Section } from "./_fields";
import { isModelName } from "../pool/model-facts";
import { ConfigError } from "./errors";
import { parseTokensFile } from "./tokens-file";
import {
  ROTATIONS,
  type CheckConfig,
  type KeySpec,
  type PoolConfig,
  type RefreshConfig,
  type UpstreamConfig,
} from "./types";

/** Keys a pool accepts; at the top level next to `pools:` they are defaults for every pool. */
export const POOL_KEYS = [
  "tokens_file",
  "rotation",
  "cooldown_sec",
  "recheck_interval_sec",
  "lease_ttl_sec",
  "max_concurrency",
  "rpm",
  "tpm",
  "daily_requests",
  "classify",
  "backoff",
  "check",
  "refresh",
  "proxy",
  "upstream",
  "session",
  "fallback",
  "model_map",
  "min_live",
  ...MODEL_AWARE_POOL_KEYS,
  "budget",
] as const;

const HTTP = ["http", "https"] as const;

/** `given`: the pool's keys from elsewhere (the environment), instead of a `tokens_file`. */
export function readPool(name: string, s: Section, baseDir: string, given?: KeySpec[]): PoolConfig {
  const tokens = given ? { file: undefined, keys: given } : readTokens(s, baseDir);
  keepSecretsOutOfMessages(s, tokens?.keys ?? []);
  const check = s.section("check");
  const refresh = s.section("refresh");
  const upstream = s.section("upstream");
  const pool: PoolConfig = {
    name,
    tokensFile: tokens?.file,
    keys: tokens?.keys ?? [],
    rotation: s.oneOf("rotation", ROTATIONS, "lru"),
    cooldownSec: readCooldown(s) ?? 30,
    recheckIntervalSec: s.seconds("recheck_interval_sec", { default: 300, positive: true }),
    leaseTtlSec: s.seconds("lease_ttl_sec", { default: 300, positive: true }),
    maxConcurrency: s.number("max_concurrency", { min: 1, max: MAX_KEY_LIMIT, integer: true }),
    rpm: s.number("rpm", { min: 1, max: MAX_KEY_LIMIT, integer: true, unit: "requests" }),
    tpm: s.number("tpm", { min: 1, max: MAX_KEY_LIMIT, integer: true, unit: "tokens" }),
    dailyRequests: s.number("daily_requests", { min: 1, max: MAX_KEY_LIMIT, integer: true, unit: "requests" }),
    classify: readClassify(s),
    backoff: readBackoff(s),
    check: check && readCheck(check),
    refresh: refresh && readRefresh(refresh),
    proxy: s.url("proxy", ["http", "https", "socks5", "socks5h"], "http://proxy.internal:3128"),
    upstream: upstream && readUpstream(upstream),
    session: readSession(s),
    fallback: readFallback(s),
    modelMap: readModelMap(s),
    minLive: s.number("min_live", { min: 1, max: MAX_KEY_LIMIT, integer: true, unit: "keys" }),
    ...readModelAware(s),
    budget: readBudget(s),
  };
  s.done();
  return pool;
}

/**
 * A rest in seconds; -1 is poolctl's way to write "no rest" (there, 0 means its 30 s default), so it
 * reads as 0. Other negative values are refused.
 */
function readCooldown(s: Section): number | undefined {
  return s.entry("cooldown_sec")?.value === -1 ? 0 : s.seconds("cooldown_sec");
}

/** A token pasted into a wrong field elsewhere in the config must not come back in that field's message. */
function keepSecretsOutOfMessages(s: Section, keys: readonly KeySpec[]): void {
  for (const key of keys) {
    s.issues.redact(key.token, `(the token of key ${key.id})`);
    if (key.refreshToken) s.issues.redact(key.refreshToken, `(the refresh token of key ${key.id})`);
  }
}

function readTokens(s: Section, baseDir: string): { file: string; keys: PoolConfig["keys"] } | undefined {
  const written = s.required("tokens_file", "point it at a file with one key per line (see example.tokens.txt)");
  if (written === undefined) return undefined;
  const file = resolve(baseDir, written);
  const path = s.entry("tokens_file")!.path;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    s.issues.add(path, `cannot read "${file}" (${describeFsError(error)}) — create it or fix the path`);
    return undefined;
  }
  try {
    return { file, keys: parseTokensFile(text, written) };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    s.issues.addAll(error.issues);
    return { file, keys: [] };
  }
}

/** A short human reason for a failed read, e.g. "no such file". */
export function describeFsError(error: unknown): string {
  const code = (error as { code?: string }).code;
  const reasons: Record<string, string> = {
    ENOENT: "no such file",
    EACCES: "permission denied",
    EISDIR: "it is a directory",
    ENOTDIR: "a parent is not a directory",
  };
  return (code && reasons[code]) ?? code ?? String(error);
}

const HTTP_CHECK_ONLY = ["url", "method", "headers", "body", "success_status", "success_body", "insecure"];
const COMMAND_CHECK_ONLY = ["cmd", "env", "success_output"];

function readCheck(s: Section): CheckConfig | undefined {
  const tuning = {
    timeoutSec: s.seconds("timeout_sec", { default: 10, positive: true }),
    concurrency: s.number("concurrency", { min: 1, max: MAX_SMALL_COUNT, integer: true }),
    reviveIntervalSec: s.seconds("revive_interval_sec", { positive: true }),
    failuresToDead: s.number("failures_to_dead", { min: 1, max: MAX_SMALL_COUNT, integer: true }),
    model: readCheckModel(s),
  };
  s.allow([...HTTP_CHECK_ONLY, ...COMMAND_CHECK_ONLY]);
  const isHttp = s.has("url");
  const isCommand = s.has("cmd");
  if (!checkTypeMatches(s, isHttp, isCommand)) {
    s.done();
    return undefined;
  }
  let check: CheckConfig | undefined;
  if (isHttp && isCommand) {
    s.issues.add(s.path, "has both url and cmd — a check is an HTTP request (url) or a command (cmd); keep one");
  } else if (isHttp) {
    rejectKeys(s, COMMAND_CHECK_ONLY, "only applies to command checks (cmd), not HTTP checks (url)");
    check = {
      kind: "http",
      url: s.url("url", HTTP, "https://api.example.com/v1/models") ?? "",
      method: s.string("method", "GET").toUpperCase(),
      headers: s.stringMap("headers"),
      body: s.string("body"),
      successStatus: s.statuses("success_status", [200]),
      successBody: s.string("success_body"),
      insecure: s.bool("insecure"),
      ...tuning,
    };
  } else if (isCommand) {
    rejectKeys(s, HTTP_CHECK_ONLY, "only applies to HTTP checks (url), not command checks (cmd)");
    check = { kind: "command", ...readCheckCommand(s), successOutput: s.string("success_output"), ...tuning };
  } else {
    s.issues.add(s.path, "needs url (an HTTP probe) or cmd (a command probe)");
  }
  s.done();
  return check;
}

/** `check.model`: the model the probe calls, so that its success also gives a denied (key, model) pair back. */
function readCheckModel(s: Section): string | undefined {
  const model = s.string("model");
  if (model === undefined || isModelName(model)) return model;
  s.issues.add(
    s.keyPath("model"),
    "is not a model name — write the model the probe calls as the provider spells it (letters, digits and " +
      ". _ : / @ + -), e.g. gpt-4o for url: https://api.openai.com/v1/models/gpt-4o",
  );
  return undefined;
}

const CHECK_TYPES = ["http", "command"] as const;

/**
 * poolctl's `type: http | command`. keypool tells the kind from url or cmd, so `type` is optional;
 * when given it must agree with them, or the check would silently be of the other kind.
 */
function checkTypeMatches(s: Section, isHttp: boolean, isCommand: boolean): boolean {
  const written = s.entry("type");
  if (!written) return true;
  const type = CHECK_TYPES.find((t) => t === written.value);
  if (!type) {
    s.issues.add(written.path, `${describe(written.value)} is not one of ${CHECK_TYPES.join(", ")}`);
    return false;
  }
  const [needs, other] = type === "http" ? ["url", "cmd"] : ["cmd", "url"];
  if (type === "http" ? isHttp : isCommand) return true;
  if (type === "http" ? isCommand : isHttp) {
    const otherType = type === "http" ? "command" : "http";
    const fix = `${CHECK_FIX[type]}, or write type: ${otherType}`;
    s.issues.add(written.path, `is ${type}, but the check has ${other} and no ${needs} — ${fix}`);
  } else {
    s.issues.add(s.keyPath(needs), `required by type: ${type} — ${CHECK_FIX[type]}`);
  }
  return false;
}

const CHECK_FIX = {
  http: "give url, the address probed with each token, e.g. https://api.example.com/v1/models",
  command: 'give cmd, the command run for each token, e.g. "./probe.sh {token}"',
} as const;

function rejectKeys(s: Section, keys: string[], why: string): void {
  for (const k of keys) if (s.has(k)) s.issues.add(s.keyPath(k), why);
}

function readRefresh(s: Section): RefreshConfig {
  const enabled = s.bool("enabled", true);
  if (enabled && !s.has("url"))
    s.issues.add(
      s.keyPath("url"),
      "required when refresh is enabled — the token endpoint, e.g. https://auth.example.com/oauth/token",
    );
  const url = s.url("url", HTTP, "https://auth.example.com/oauth/token");
  const refresh: RefreshConfig = {
    enabled,
    url: url ?? "",
    method: s.string("method", "POST").toUpperCase(),
    headers: s.stringMap("headers"),
    body: s.string("body"),
    tokenField: s.string("token_field", "access_token"),
    refreshTokenField: s.string("refresh_token_field"),
    expiresInField: s.string("expires_in_field"),
    aheadSec: s.seconds("ahead_sec"),
  };
  s.done();
  return refresh;
}

function readUpstream(s: Section): UpstreamConfig {
  const enabled = s.bool("enabled", false);
  if (enabled && !s.has("base_url"))
    s.issues.add(s.keyPath("base_url"), "required when enabled is true — e.g. https://api.openai.com");
  const authTemplate = s.string("auth_template", "Bearer {token}");
  if (!authTemplate.includes("{token}"))
    s.issues.add(s.keyPath("auth_template"), 'must contain {token}, e.g. "Bearer {token}"');
  const upstream: UpstreamConfig = {
    enabled,
    listen: readAddr(s, "listen", "127.0.0.1:8080").addr,
    baseUrl: s.url("base_url", HTTP, "https://api.openai.com"),
    authHeader: s.string("auth_header", "Authorization"),
    authTemplate,
    retryOn: s.statuses("retry_on", [401, 403, 429, 500, 502, 503, 504]),
    maxRetries: s.number("max_retries", { min: 0, max: MAX_RETRIES, integer: true, unit: "retries", default: 2 }),
    retryBudget: s.number("retry_budget", { min: 0, max: MAX_RETRIES, unit: "retries per client request" }),
    quarantineSec: s.seconds("quarantine_sec", { default: 300 }),
    cooldownSec: readCooldown(s),
    timeoutSec: s.seconds("timeout_sec", { default: 60, positive: true }),
    authQuery: s.string("auth_query"),
    clientKeys: s.stringList("client_keys", { secret: true }),
    maxBodyBytes: s.number("max_body_bytes", {
      min: 1,
      max: MAX_BODY_BYTES_LIMIT,
      integer: true,
      unit: "bytes",
      default: 32 * 1024 * 1024,
    }),
    pathPrefix: readPathPrefix(s),
    models: s.stringList("models") ?? [],
    queueTimeoutSec: s.seconds("queue_timeout_sec"),
    forwardHeaders: readForwardHeaders(s),
  };
  s.done();
  return upstream;
}

/**
 * Client headers never forwarded whatever the config says: the client's own credentials (the pooled
 * key replaces them) and headers that describe the connection rather than the request.
 */
const NEVER_FORWARDED = new Set([
  "authorization",
  "x-api-key",
  "api-key",
  "x-goog-api-key",
  "proxy-authorization",
  "host",
  "content-length",
  "connection",
  "keep-alive",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

function readForwardHeaders(s: Section): string[] | undefined {
  const names = s.stringList("forward_headers")?.map((name) => name.trim().toLowerCase());
  const refused = names?.filter((name) => NEVER_FORWARDED.has(name) || !/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name));
  if (refused?.length) {
    const why = "cannot be forwarded (a client credential, a connection header or not a header name) — remove it";
    s.issues.add(s.keyPath("forward_headers"), `${refused.join(", ")} ${why}`);
    return undefined;
  }
  return names;
}

function readPathPrefix(s: Section): string | undefined {
  const prefix = s.string("path_prefix");
  if (prefix === undefined) return undefined;
  if (/^\/[A-Za-z0-9._~/-]*$/.test(prefix)) return prefix.replace(/\/+$/, "");
  s.issues.add(s.keyPath("path_prefix"), 'expected a path starting with "/", e.g. /openai');
  return undefined;
}
