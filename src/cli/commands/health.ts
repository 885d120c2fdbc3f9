import { defineCommand } from "citty";
import { ConfigError } from "../../config/errors";
import { findConfig } from "../../config/find-config";
import { localUrlOf } from "../_client";
import { configOrEnvArg } from "../_shared";
import { EXIT } from "../exit";
import { MAX_DURATION_SEC } from "../../pool/bounds";

const DEFAULT_URL = "http://127.0.0.1:8787";

/** For container health checks: images without curl still have keypool. */
export default defineCommand({
  meta: {
    name: "health",
    description: "Exit 0 when a daemon's /health answers 200, else 1 (for container health checks)",
  },
  args: {
    ...configOrEnvArg,
    url: {
      type: "string",
      description: `Daemon URL (default: server.addr of the config serve would run, else ${DEFAULT_URL})`,
    },
    timeout: { type: "string", description: "Seconds to wait for the answer (default 5)" },
  },
  async run({ args }) {
    const base = args.url ?? configuredUrl(args.config);
    const timeoutSec = Number(args.timeout ?? 5);
    const url = `${base.replace(/\/$/, "")}/health`;
    try {
      // Out of range (Infinity makes AbortSignal.timeout throw) is the default, as a bad value always was.
      const bounded = timeoutSec > 0 && timeoutSec <= MAX_DURATION_SEC ? timeoutSec : 5;
      const response = await fetch(url, { signal: AbortSignal.timeout(bounded * 1000) });
      await response.body?.cancel().catch(() => {});
      if (response.status === 200) {
        console.log(`ok: ${url}`);
        return EXIT.ok;
      }
      console.error(`unhealthy: ${url} answered HTTP ${response.status}`);
    } catch (error) {
      console.error(
        `unhealthy: ${url} did not answer (${(error as Error).name === "TimeoutError" ? "timeout" : (error as Error).message})`,
      );
    }
    return EXIT.failure;
  },
});

/** Where `keypool serve` with the same -c, directory and environment listens; the default when there is no config. */
function configuredUrl(path: string | undefined): string {
  try {
    return localUrlOf(findConfig({ path }).server);
  } catch (error) {
    if (error instanceof ConfigError) return DEFAULT_URL;
    throw error;
  }
}
