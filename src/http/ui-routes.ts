import { Elysia, t } from "elysia";
import type { Clock } from "../pool/clock";
import type { Metrics } from "../metrics/metrics";
import { DASHBOARD_HTML } from "./_dashboard-page";
import { errors } from "./schemas";

// The page may load nothing but itself and talk to nothing but this daemon.
const DASHBOARD_CSP =
  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

const Minute = t.Object({
  minute: t.Integer({ description: "Epoch minute (ms / 60000)", examples: [29454720] }),
  requests: t.Integer({ examples: [12] }),
  errors: t.Integer({ examples: [1] }),
});

const UiData = t.Object(
  {
    now: t.String({ format: "date-time", description: "The daemon's clock, so countdowns agree with it" }),
    pools: t.Record(
      t.String(),
      t.Object({ minutes: t.Array(Minute, { description: "The last 60 minutes, oldest first" }) }),
    ),
  },
  {
    examples: [
      {
        now: "2026-01-01T12:00:00.000Z",
        pools: { default: { minutes: [{ minute: 29454720, requests: 12, errors: 1 }] } },
      },
    ],
  },
);

/**
 * GET /ui: the dashboard page (public: it holds no data and asks for the API key itself), and
 * GET /ui/data: per-minute activity for its charts (behind the API key like /status).
 */
export function uiRoutes(deps: { metrics: Metrics; poolNames: () => string[]; clock: Clock }) {
  return new Elysia({ name: "ui" })
    .get(
      "/ui",
      () =>
        new Response(DASHBOARD_HTML, {
          headers: { "content-type": "text/html; charset=utf-8", "content-security-policy": DASHBOARD_CSP },
        }),
      {
        response: {
          200: t.String({ description: "The dashboard page (HTML)", examples: ["<!doctype html><html>…</html>"] }),
        },
        detail: {
          summary: "Live dashboard: pools, keys and the last hour of traffic",
          tags: ["observability"],
          security: [],
        },
      },
    )
    .get(
      "/ui/data",
      () => ({ now: new Date(deps.clock.now()).toISOString(), pools: deps.metrics.activity(deps.poolNames()) }),
      {
        response: { 200: UiData, ...errors(401) },
        detail: { summary: "Requests and errors per minute over the last hour, per pool", tags: ["observability"] },
      },
    );
}
