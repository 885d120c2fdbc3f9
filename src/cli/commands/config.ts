import { defineCommand } from "citty";
import { stringify } from "yaml";
import { loadConfig } from "../../config/load";
import { originOf } from "../../alerts/alert";
import type { AlertsConfig, CheckConfig, Config, PoolConfig, RefreshConfig } from "../../config/types";
import { maskToken } from "../../pool/mask";
import { maskDatabaseUrl } from "../../store/postgres/database-url";
import { EXIT } from "../exit";
import { configArg, jsonArg } from "../_shared";

const validate = defineCommand({
  meta: { name: "validate", description: "Check a config file and print it resolved, with every secret masked" },
  args: { ...configArg, ...jsonArg },
  run({ args }) {
    // A ConfigError propagates: the runner prints it and exits 2.
    const config = maskConfig(loadConfig(args.config));
    console.log(args.json ? JSON.stringify(config, null, 2) : stringify(config).trimEnd());
    return EXIT.ok;
  },
});

export default defineCommand({
  meta: { name: "config", description: "Work with config files" },
  subCommands: { validate },
});

/**
 * A copy safe to print: tokens, the API key, header values, request bodies, proxy and database
 * passwords are masked, because headers and bodies routinely carry credentials.
 */
export function maskConfig(config: Config): unknown {
  const masked = {
    ...config,
    server: { ...config.server, apiKey: mask(config.server.apiKey) },
    pools: Object.fromEntries(Object.entries(config.pools).map(([name, pool]) => [name, maskPool(pool)])),
    alerts: config.alerts && maskAlerts(config.alerts),
    store: config.store && {
      ...config.store,
      postgres: config.store.postgres && { ...config.store.postgres, url: maskDatabaseUrl(config.store.postgres.url) },
    },
  };
  return JSON.parse(JSON.stringify(masked)); // drops undefined fields so YAML output stays tidy
}

/** A webhook URL's path or query is often its secret (Slack's are): only the origin is shown. */
function maskAlerts(alerts: AlertsConfig) {
  return {
    ...alerts,
    webhooks: alerts.webhooks.map((hook) => ({
      ...hook,
      url: `${originOf(hook.url)}/…`,
      headers: Object.fromEntries(Object.entries(hook.headers).map(([name, value]) => [name, maskToken(value)])),
    })),
  };
}

function maskPool(pool: PoolConfig) {
  return {
    ...pool,
    keys: pool.keys.map((k) => ({ ...k, token: maskToken(k.token), refreshToken: mask(k.refreshToken) })),
    check: pool.check && maskRequest(pool.check),
    refresh: pool.refresh && maskRequest(pool.refresh),
    proxy: pool.proxy && maskUrlPassword(pool.proxy),
    upstream: pool.upstream && { ...pool.upstream, clientKeys: pool.upstream.clientKeys?.map(maskToken) },
  };
}

function maskRequest<T extends CheckConfig | RefreshConfig>(req: T): T {
  // A command check's env may carry credentials (a proxy password, an API secret) just as headers do.
  if ("kind" in req && req.kind === "command") return { ...req, env: req.env && mapValues(req.env, maskToken) };
  const r = req as Exclude<T, { kind: "command" }>;
  return {
    ...r,
    headers: Object.fromEntries(Object.entries(r.headers).map(([name, value]) => [name, maskToken(value)])),
    body: mask(r.body),
  };
}

function mapValues(record: Record<string, string>, f: (value: string) => string): Record<string, string> {
  return Object.fromEntries(Object.entries(record).map(([name, value]) => [name, f(value)]));
}

function mask(secret: string | undefined): string | undefined {
  return secret === undefined ? undefined : maskToken(secret);
}

function maskUrlPassword(url: string): string {
  const parsed = new URL(url);
  if (!parsed.password) return url;
  parsed.password = "MASKED";
  return parsed.toString().replace(":MASKED@", ":…@");
}
