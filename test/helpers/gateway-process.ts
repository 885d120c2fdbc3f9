import type { Subprocess } from "bun";

export interface ProxyProcess extends AsyncDisposable {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  apiUrl: string;
  gatewayUrl: string;
  /** Stops it (SIGTERM) and resolves with everything it wrote: its log, anything Bun printed, stdout. */
  stop(): Promise<{ code: number; output: string }>;
}

/**
 * Runs `keypool proxy -c FILE --port 0` as its own process and resolves once it has logged both
 * the API's and the gateway's URL — the log lines are the signal.
 */
export async function spawnProxy(configPath: string): Promise<ProxyProcess> {
  const proc = Bun.spawn([process.execPath, "src/main.ts", "proxy", "-c", configPath, "--port", "0"], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  let stderr = "";
  let stdout = "";
  const stdoutRead = (async () => {
    for await (const chunk of proc.stdout) stdout += new TextDecoder().decode(chunk);
  })();
  const listening = Promise.withResolvers<{ api: string; gateway: string }>();
  const stderrRead = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr) {
      stderr += decoder.decode(chunk);
      const api = stderr.match(/"msg":"keypool API listening","url":"([^"]+)"/)?.[1];
      const gateway = stderr.match(/"msg":"keypool gateway listening","url":"([^"]+)"/)?.[1];
      if (api && gateway) listening.resolve({ api, gateway });
    }
    listening.reject(new Error(`keypool proxy exited before listening (code ${await proc.exited}):\n${stderr}`));
  })();
  const urls = await listening.promise;
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
    const code = await proc.exited;
    await Promise.all([stdoutRead, stderrRead]);
    return { code, output: stderr + stdout };
  };
  return {
    proc,
    apiUrl: urls.api,
    gatewayUrl: urls.gateway,
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
    },
  };
}
