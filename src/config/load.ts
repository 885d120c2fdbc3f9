import { MAX_SMALL_COUNT } from "../pool/bounds";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { LineCounter, parseDocument } from "yaml";
import { Issues, Section, describe, isMapping, joinPath, readAddr } from "./_fields";
import { readAlerts } from "./_alerts";
import { readPrices } from "./_prices";
import { POOL_KEYS, describeFsError, readPool } from "./_pool";
import { checkFallbacks } from "./_routing";
import { checkCredentialReuse } from "./_credential-reuse";
import { ConfigError } from "./errors";
import { stateFilesFor } from "./state-file";
import { interpolateEnv } from "./interpolate";
import {
  type Config,
  type KeySpec,
  LOG_FORMATS,
  LOG_LEVELS,
  MAX_IDLE_TIMEOUT_SEC,
  MAX_MAX_CONNECTIONS,
  type PoolConfig,
} from "./types";

type Env = Record<string, string | undefined>;

export const DEFAULT_SHUTDOWN_TIMEOUT_SEC = 30;

const POOL_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/**
 * Reads, interpolates and validates a config file, and reads every pool's tokens file.
 * Relative paths inside it are resolved against the file's directory.
 * @throws ConfigError listing every problem found, each naming its path and the fix.
 */
export function loadConfig(path: string, env: Env = process.env): Config {
  const source = resolve(path);
  let text: string;
  try {
    text = readFileSync(source, "utf8");
  } catch (error) {
    throw new ConfigError([
      `cannot read config file "${source}" (${describeFsError(error)}) — pass -c PATH, or start from keypool.example.yaml`,
    ]);
  }
  return parseConfig(text, { baseDir: dirname(source), source, env });
}

/** Parses config text as if it were a file in `baseDir`; `source` names it in messages. */
export function parseConfig(text: string, opts: { baseDir: string; source?: string; env: Env }): Config {
  const fileName = opts.source ?? "config";
  const raw = parseYaml(text, fileName);
  const issues = new Issues();
  const tree = interpolateEnv(raw, opts.env, issues) as Record<string, unknown>;
  const config: Config = { source: opts.source, ...readConfig(new Section(tree, "", issues), opts.baseDir) };
  if (issues.all.length > 0) throw new ConfigError(issues.all);
  return config;
}

/**
 * Validates a settings tree shaped like a config file whose pools' keys come from the caller
 * (`keys` by pool name) instead of tokens files: how the environment defines pools.
 * Messages name the tree's paths (`pools.openai.rotation`); the caller may translate them.
 */
export function readConfigTree(
  tree: Record<string, unknown>,
  opts: { baseDir: string; keys: Record<string, KeySpec[]> },
): Config {
  const issues = new Issues();
  const config = readConfig(new Section(tree, "", issues), opts.baseDir, opts.keys);
  if (issues.all.length > 0) throw new ConfigError(issues.all);
  return config;
}

function parseYaml(text: string, fileName: string): Record<string, unknown> {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) {
    // One mistake cascades into dozens of parser errors; the first few locate it.
    const shown = doc.errors.slice(0, 3).map((e) => {
      const { line, col } = lineCounter.linePos(e.pos[0]);
      return `${fileName}:${line}:${col}: YAML syntax error: ${cleanYamlMessage(e.message)}`;
    });
    const more = doc.errors.length - shown.length;
    if (more > 0) shown.push(`${fileName}: ${more} more YAML errors follow from the ones above — fix those first`);
    throw new ConfigError(shown);
  }
  const value: unknown = doc.toJS({ maxAliasCount: 100 });
  if (value === null || value === undefined) {
    throw new ConfigError([`${fileName}: the file is empty — add at least tokens_file (see keypool.example.yaml)`]);
  }
  if (!isMapping(value)) {
    throw new ConfigError([`${fileName}: expected a mapping of settings at the top level, got ${describe(value)}`]);
  }
  return value;
}

/** The parser's message without the source text it sometimes quotes, which may be a secret. */
function cleanYamlMessage(message: string): string {
  return message
    .split("\n")[0]!
    .replace(/\s+at line \d+, column \d+.*$/, "")
    .replace(/: ".*"$/, "");
}

function readConfig(s: Section, baseDir: string, keys?: Record<string, KeySpec[]>): Config {
  const server = s.section("server");
  const store = s.section("store");
  const metrics = s.section("metrics");
  const log = s.section("log");
  const alerts = s.section("alerts");
  // Read before the pools: a single-pool file's top level is also its pool, which flags keys not yet read.
  const prices = readPrices(s);
  const stateFile = s.string("state_file", "keypool.db");
  const config: Config = {
    server: readServer(server ?? new Section({}, "server", s.issues)),
    metrics: metrics && readMetrics(metrics),
    log: log && readLog(log),
    ...stateFilesFor(stateFile === ":memory:" ? stateFile : resolve(baseDir, stateFile)),
    shutdownTimeoutSec: s.seconds("shutdown_timeout_sec", { default: DEFAULT_SHUTDOWN_TIMEOUT_SEC }),
    store: store && readStore(store, baseDir),
    watch: s.bool("watch"),
    pools: readPools(s, baseDir, keys),
    alerts: alerts && readAlerts(alerts),
    prices,
  };
  checkCredentialReuse(config, s.issues);
  s.done();
  return config;
}

function readStore(s: Section, baseDir: string): Config["store"] {
  const keyFile = s.string("encryption_key_file");
  const postgres = s.section("postgres");
  const store: Config["store"] = {
    encryptionKeyFile: keyFile === undefined ? undefined : resolve(baseDir, keyFile),
    postgres: postgres && readPostgres(postgres),
  };
  s.done();
  return store;
}

/** `store.postgres`: the shared store. The URL holds a password, so no message ever echoes it. */
function readPostgres(s: Section): NonNullable<Config["store"]>["postgres"] {
  if (!s.has("url")) {
    s.issues.add(
      s.keyPath("url"),
      "required — e.g. postgres://keypool:${DB_PASSWORD}@db.internal:5432/keypool (or set KEYPOOL_DATABASE_URL and leave store.postgres out)",
    );
  }
  const url = s.url("url", ["postgres", "postgresql"], "postgres://keypool:PASSWORD@db.internal:5432/keypool");
  const postgres = {
    url: url ?? "",
    timeoutSec: s.seconds("timeout_sec", { default: 5, positive: true }),
    maxConnections: s.number("max_connections", {
      min: 1,
      max: MAX_SMALL_COUNT,
      integer: true,
      default: 10,
      unit: "connections",
    }),
  };
  s.done();
  return postgres;
}

function readServer(s: Section): Config["server"] {
  const { host, port } = readAddr(s, "addr", "127.0.0.1:8787");
  const server: Config["server"] = { host, port, apiKey: s.secret("api_key"), allowedHosts: readAllowedHosts(s) };
  // Set only when given, so a config that leaves them out reads the same as before they existed.
  const idleTimeoutSec = s.number("idle_timeout_sec", {
    min: 1,
    max: MAX_IDLE_TIMEOUT_SEC,
    integer: true,
    unit: "seconds",
  });
  const maxConnections = s.number("max_connections", {
    min: 1,
    max: MAX_MAX_CONNECTIONS,
    integer: true,
    unit: "connections",
  });
  if (idleTimeoutSec !== undefined) server.idleTimeoutSec = idleTimeoutSec;
  if (maxConnections !== undefined) server.maxConnections = maxConnections;
  s.done();
  return server;
}

// A DNS name or an IP literal (IPv6 in brackets, as a Host header writes it): no scheme, port or path.
const DNS_LABEL = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
const HOST_NAME = new RegExp(`^(?:${DNS_LABEL}(?:\\.${DNS_LABEL})*|\\[[0-9a-f:.]+\\])$`);

/** `server.allowed_hosts`: names besides loopback ones that loopback listeners without credentials answer. */
function readAllowedHosts(s: Section): string[] | undefined {
  const list = s.stringList("allowed_hosts");
  if (!list) return undefined;
  const names = list.map((name) => name.trim().toLowerCase());
  names.forEach((name, index) => {
    if (HOST_NAME.test(name)) return;
    const hint = "write the name alone, e.g. keypool.internal (no scheme, port or path)";
    const path = joinPath(s.keyPath("allowed_hosts"), String(index));
    s.issues.add(path, `"${name.slice(0, 100)}" is not a host name — ${hint}`);
  });
  return names;
}

function readLog(s: Section): Config["log"] {
  const log: Config["log"] = {};
  if (s.has("level")) log.level = s.oneOf("level", LOG_LEVELS, "info");
  if (s.has("format")) log.format = s.oneOf("format", LOG_FORMATS, "json");
  s.done();
  return log;
}

function readMetrics(s: Section): Config["metrics"] {
  // poolctl's `addr: ""` means no dedicated listener; /metrics stays on the API either way.
  const metrics = s.isBlank("addr") ? undefined : { addr: readAddr(s, "addr", "127.0.0.1:9090").addr };
  s.done();
  return metrics;
}

/**
 * Without `pools:`, the top level is one pool named `default` (the poolctl format).
 * With it, per-pool keys at the top level are defaults every pool inherits unless it sets its own.
 */
function readPools(top: Section, baseDir: string, keys?: Record<string, KeySpec[]>): Record<string, PoolConfig> {
  const entry = top.entry("pools");
  if (!entry)
    return checkFallbacks({ default: readPool("default", top, baseDir, keys?.default) }, () => "", top.issues);
  top.allow(POOL_KEYS);
  if (!isMapping(entry.value) || Object.keys(entry.value).length === 0) {
    top.issues.add(
      entry.path,
      "expected a mapping of pool names to pool settings — add one, or drop pools: for a single pool",
    );
    return {};
  }
  const pools: Record<string, PoolConfig> = {};
  for (const [name, body] of Object.entries(entry.value)) {
    const path = joinPath(entry.path, name);
    if (!POOL_NAME.test(name)) {
      top.issues.add(
        path,
        "pool names are 1–64 lowercase letters, digits, _ and -, starting with a letter or digit — rename it",
      );
      continue;
    }
    if (body !== null && !isMapping(body)) {
      top.issues.add(path, `expected a mapping of pool settings, got ${describe(body)}`);
      continue;
    }
    pools[name] = readPool(name, new Section(body ?? {}, path, top.issues, top), baseDir, keys?.[name]);
  }
  return checkFallbacks(pools, (name) => joinPath(entry.path, name), top.issues);
}
