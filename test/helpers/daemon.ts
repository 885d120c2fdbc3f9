import { writeFileSync } from "node:fs";
import { loadConfig } from "../../src/config/load";
import { createDaemon, type Daemon, type DaemonOptions } from "../../src/daemon/create-daemon";
import { type Logger, createLogger } from "../../src/log";
import { tempDir } from "./temp-dir";

export interface TestDaemon extends AsyncDisposable {
  daemon: Daemon;
  url: string;
  dir: ReturnType<typeof tempDir>;
  /** Every log line the daemon wrote. */
  logs: string[];
  configPath: string;
  fetch(path: string, init?: RequestInit & { apiKey?: string }): Promise<Response>;
}

/**
 * Starts a real daemon on port 0 from a YAML config and tokens file written to a temp dir.
 * `yaml` may refer to `tokens.txt`, which holds `tokens`.
 */
export async function startTestDaemon(yaml: string, tokens: string, options: DaemonOptions = {}): Promise<TestDaemon> {
  const dir = tempDir();
  const configPath = dir.file("keypool.yaml");
  writeFileSync(dir.file("tokens.txt"), tokens);
  writeFileSync(configPath, yaml);
  const logs: string[] = [];
  const logger: Logger = createLogger({ level: "debug", format: "json", write: (line) => logs.push(line) });
  const daemon = await createDaemon(loadConfig(configPath), { logger, port: 0, ...options });
  await daemon.start();
  const url = daemon.url;
  return {
    daemon,
    url,
    dir,
    logs,
    configPath,
    fetch(path, init = {}) {
      const headers = new Headers(init.headers);
      if (init.apiKey) headers.set("x-api-key", init.apiKey);
      return fetch(`${url}${path}`, { ...init, headers });
    },
    async [Symbol.asyncDispose]() {
      await daemon.stop();
      dir[Symbol.dispose]();
    },
  };
}

export const jsonPost = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});

/**
 * An authenticated JSON caller of `kp`'s API: `(method, path, body?) → { status, body }`. Every body
 * it reads is kept in `seen`, so a test can check afterwards that no token leaked into any answer.
 */
export function adminClient(kp: Pick<TestDaemon, "fetch">, apiKey: string, seen: string[] = []) {
  return async (method: string, path: string, body?: unknown) => {
    const response = await kp.fetch(path, {
      method,
      apiKey,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    seen.push(text);
    return { status: response.status, body: JSON.parse(text) };
  };
}
