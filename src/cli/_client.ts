import { existsSync } from "node:fs";
import { loadConfig } from "../config/load";
import { CliExit, EXIT } from "./exit";

export interface DaemonTarget {
  url: string;
  apiKey?: string;
}

/** Where the daemon is: --url/--api-key win; otherwise the config's server block. */
export function resolveDaemon(args: { config?: string; url?: string; "api-key"?: string }): DaemonTarget {
  const envKey = process.env.KEYPOOL_API_KEY || undefined;
  if (args.url) return { url: args.url.replace(/\/$/, ""), apiKey: args["api-key"] ?? envKey };
  if (!args.config || !existsSync(args.config)) {
    throw new CliExit(
      EXIT.usage,
      `no daemon address: pass --url http://HOST:PORT, or -c FILE with server.addr (cannot read "${args.config}")`,
    );
  }
  const config = loadConfig(args.config);
  return { url: localUrlOf(config.server), apiKey: args["api-key"] ?? envKey ?? config.server.apiKey };
}

/** The URL a client on this machine reaches a server at: a wildcard address becomes loopback. */
export function localUrlOf(server: { host: string; port: number }): string {
  const host = server.host === "0.0.0.0" || server.host === "::" ? "127.0.0.1" : server.host;
  return `http://${host.includes(":") ? `[${host}]` : host}:${server.port}`;
}

/** Calls the daemon and returns the parsed JSON body with its status; network failures become a clear exit. */
export async function callDaemon(
  target: DaemonTarget,
  method: "GET" | "POST" | "PATCH" | "DELETE",
  path: string,
  body?: unknown,
  // biome-ignore lint/suspicious/noExplicitAny: a daemon's JSON answer, read by each command in its own shape
): Promise<{ status: number; body: any; headers: Headers }> {
  const headers: Record<string, string> = {};
  if (target.apiKey) headers["x-api-key"] = target.apiKey;
  if (body !== undefined) headers["content-type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(`${target.url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new CliExit(
      EXIT.failure,
      `cannot reach keypool at ${target.url} (${(error as Error).message}); is "keypool serve" running?`,
    );
  }
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: response.status, body: parsed, headers: response.headers };
}

/** Turns a daemon error body into a CLI failure. */
// biome-ignore lint/suspicious/noExplicitAny: any daemon answer, whose error field is read if present
export function failFromResponse(result: { status: number; body: any }): never {
  const error = result.body?.error;
  const message = error ? `${error.code}: ${error.message}` : `daemon answered HTTP ${result.status}`;
  throw new CliExit(EXIT.failure, `keypool: ${message}`);
}
