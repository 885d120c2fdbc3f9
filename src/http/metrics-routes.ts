import { Elysia, t } from "elysia";
import type { Metrics } from "../metrics/metrics";

/** GET /metrics: Prometheus text exposition. Never behind the API key, and never carries a token. */
export function metricsRoutes(metrics: Metrics) {
  return new Elysia({ name: "metrics" }).get(
    "/metrics",
    async () => new Response(await metrics.scrape(), { headers: { "content-type": metrics.contentType } }),
    {
      response: {
        200: t.String({
          description: "Prometheus text format 0.0.4",
          examples: [
            '# HELP keypool_keys Keys per pool and state, read from the store at scrape time.\n# TYPE keypool_keys gauge\nkeypool_keys{pool="default",state="live"} 3\n',
          ],
        }),
      },
      detail: { summary: "Prometheus metrics (no auth)", tags: ["observability"], security: [] },
    },
  );
}
