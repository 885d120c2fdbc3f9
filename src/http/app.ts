import { Elysia } from "elysia";
import type { Logger } from "../log";
import { type ReloadReport, adminRoutes } from "./admin-routes";
import { createApiKeyCheck } from "./auth";
import { brokerRoutes } from "./broker-routes";
import type { BrokerService } from "./broker-service";
import { errorResponse, toErrorResponse } from "./errors";
import { statusRoutes } from "./status-routes";

export const MAX_BODY_BYTES = 1024 * 1024;

export interface ApiDeps {
  broker: BrokerService;
  reload: () => Promise<ReloadReport>;
  apiKey?: string;
  logger: Logger;
}

// Routes anyone may call, even when server.api_key is set.
const PUBLIC_PATHS = new Set(["/health"]);

/** The API listener: broker, status and admin routes behind one error mapping and one auth check. */
export function createApiApp(deps: ApiDeps) {
  const hasValidApiKey = deps.apiKey ? createApiKeyCheck(deps.apiKey) : null;
  return new Elysia({ name: "keypool-api", normalize: false })
    .onRequest(function guardRequest({ request }) {
      // GET /take is the hot path: it has no body, so its headers are not even looked at here.
      if (request.method !== "GET" && Number(request.headers.get("content-length") ?? 0) > MAX_BODY_BYTES) {
        // Closing lets the client stop uploading the rest instead of waiting on a connection we will not read.
        return errorResponse("PAYLOAD_TOO_LARGE", `request body is larger than ${MAX_BODY_BYTES} bytes`, 413, { connection: "close" });
      }
      if (hasValidApiKey && !PUBLIC_PATHS.has(pathOf(request.url)) && !hasValidApiKey(request)) {
        return errorResponse("UNAUTHORIZED", "missing or wrong API key: send it as X-API-Key or Authorization: Bearer", 401);
      }
    })
    .onError(function mapError({ error, code }) {
      const response = toErrorResponse(error, code);
      if (response.status >= 500) deps.logger.error("request failed", { error: (error as Error)?.message ?? String(error) });
      return response;
    })
    .get("/health", () => ({ ok: true }), { detail: { summary: "Liveness; never needs auth", tags: ["status"] } })
    .use(brokerRoutes(deps.broker))
    .use(statusRoutes(deps.broker))
    .use(adminRoutes(deps.reload));
}

function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  const end = url.indexOf("?", start);
  return end === -1 ? url.slice(start) : url.slice(start, end);
}
