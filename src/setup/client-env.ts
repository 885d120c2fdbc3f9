/**
 * The environment variables that point common SDKs and tools at keypool's gateway, and how each
 * shell writes them. Pure: it reads a Config, never the machine.
 */
import { parseAddr } from "../config/addr";
import type { Config, PoolConfig } from "../config/types";

export const SHELLS = ["bash", "fish", "powershell"] as const;
export type Shell = (typeof SHELLS)[number];

/** What clients send as their API key when the gateway injects the real one: the SDKs refuse to start without some key. */
export const PLACEHOLDER_KEY = "keypool";

export interface ClientVar {
  name: string;
  value: string;
  /** A key the client must send but the gateway replaces; setup never overwrites one already set. */
  placeholder: boolean;
}

export interface ClientEnv {
  vars: ClientVar[];
  /** Comment lines to print above the variables. */
  notes: string[];
}

type Flavor = "openai" | "anthropic";

/**
 * OpenAI-style clients get the gateway plus `/v1` (their SDKs expect the version in the base URL),
 * Anthropic's get the bare gateway (its SDK adds `/v1/messages`). A pool whose base_url names
 * anthropic.com serves Anthropic clients; any other serves OpenAI-compatible ones.
 * @throws Error saying what to configure when no pool has a gateway (or `--pool` names none).
 */
export function clientEnv(config: Config, options: { pool?: string } = {}): ClientEnv {
  const running = runningGateways(config);
  const pools = options.pool === undefined ? running : [namedPool(config, options.pool)];
  if (pools.length === 0)
    throw new Error("no pool has a gateway — give one upstream: { enabled: true, base_url: https://api.openai.com }");
  const byFlavor = new Map<Flavor, PoolConfig>();
  for (const pool of pools) if (!byFlavor.has(flavorOf(pool))) byFlavor.set(flavorOf(pool), pool);
  const vars: ClientVar[] = [];
  const openai = byFlavor.get("openai");
  if (openai) {
    const base = gatewayUrl(openai, running);
    // A base_url that already ends in /v1 means the gateway's paths are past the version.
    const v1 = /\/v1\/?$/.test(new URL(openai.upstream!.baseUrl!).pathname) ? "" : "/v1";
    vars.push({ name: "OPENAI_BASE_URL", value: `${base}${v1}`, placeholder: false });
    vars.push({ name: "OPENAI_API_KEY", value: PLACEHOLDER_KEY, placeholder: true });
  }
  const anthropic = byFlavor.get("anthropic");
  if (anthropic) {
    vars.push({ name: "ANTHROPIC_BASE_URL", value: gatewayUrl(anthropic, running), placeholder: false });
    vars.push({ name: "ANTHROPIC_API_KEY", value: PLACEHOLDER_KEY, placeholder: true });
  }
  const guarded = [openai, anthropic]
    .filter((pool) => (pool?.upstream?.clientKeys?.length ?? 0) > 0)
    .map((pool) => pool!.name);
  const notes = [
    `keypool gateway${config.source ? ` (${config.source})` : ""}`,
    guarded.length > 0
      ? `upstream.client_keys is set (pool ${guarded.join(", ")}): replace "${PLACEHOLDER_KEY}" with one of your client keys`
      : `the gateway injects a real key; "${PLACEHOLDER_KEY}" only satisfies clients that insist on one`,
  ];
  return { vars, notes };
}

/** The variables as `shell` sets them, comments first; ends with a newline. */
export function renderEnv(env: ClientEnv, shell: Shell): string {
  const lines = [...env.notes.map((n) => `# ${n}`), ...env.vars.map((v) => assignment(v.name, v.value, shell))];
  return `${lines.join("\n")}\n`;
}

/** One variable set in `shell`'s syntax, its value single-quoted so nothing in it is expanded. */
export function assignment(name: string, value: string, shell: Shell): string {
  switch (shell) {
    case "bash":
      return `export ${name}='${value.replaceAll("'", `'\\''`)}'`;
    case "fish":
      return `set -gx ${name} '${value.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
    case "powershell":
      return `$env:${name} = '${value.replaceAll("'", "''")}'`;
  }
}

function namedPool(config: Config, name: string): PoolConfig {
  const pool = config.pools[name];
  if (!pool) throw new Error(`no pool "${name}" — pools: ${Object.keys(config.pools).join(", ")}`);
  if (!pool.upstream?.baseUrl)
    throw new Error(`pool "${name}" has no gateway — give it upstream: { enabled: true, base_url: … }`);
  return pool;
}

/** `serve` runs the enabled gateways; with none enabled, the ones `proxy` would run (every pool with a base_url). */
function runningGateways(config: Config): PoolConfig[] {
  const all = Object.values(config.pools).filter((p) => p.upstream?.baseUrl);
  const enabled = all.filter((p) => p.upstream!.enabled);
  return enabled.length > 0 ? enabled : all;
}

function flavorOf(pool: PoolConfig): Flavor {
  return new URL(pool.upstream!.baseUrl!).hostname.endsWith("anthropic.com") ? "anthropic" : "openai";
}

/** Where clients reach the pool: its listener (a wildcard host is reached on loopback), plus its prefix when the listener is shared. */
function gatewayUrl(pool: PoolConfig, running: PoolConfig[]): string {
  const upstream = pool.upstream!;
  const { host, port } = parseAddr(upstream.listen)!;
  const local = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
  const shared = running.filter((p) => p.upstream!.listen === upstream.listen).length > 1;
  const prefix = shared ? (upstream.pathPrefix ?? `/${pool.name}`) : "";
  return `http://${local.includes(":") ? `[${local}]` : local}:${port}${prefix}`;
}
