import { openapi } from "@elysiajs/openapi";
import { Elysia } from "elysia";
import swaggerBundlePath from "swagger-ui-dist/swagger-ui-bundle.js" with { type: "file" };
import swaggerCssPath from "swagger-ui-dist/swagger-ui.css" with { type: "file" };
import { VERSION } from "../version";

export const SWAGGER_ASSETS: Record<string, { path: string; type: string }> = {
  "/swagger/swagger-ui.css": { path: swaggerCssPath, type: "text/css; charset=utf-8" },
  "/swagger/swagger-ui-bundle.js": { path: swaggerBundlePath, type: "text/javascript; charset=utf-8" },
};

/** Paths the docs serve; none needs the API key (the spec describes the API, it holds no data). */
export const DOCS_PATHS = ["/openapi.json", "/swagger", ...Object.keys(SWAGGER_ASSETS)];

// The plugin also puts this into the page's <meta> tags unescaped: no double quotes, < or &.
const DESCRIPTION = `Pools of API keys: a broker (GET /take, POST /release), status, admin and metrics.

When \`server.api_key\` is set, every route except /health, /metrics, /ui, /swagger and /openapi.json needs it,
as \`X-API-Key\` or \`Authorization: Bearer\`: press **Authorize** before **Try it out**.
Every error has one shape, an \`error\` object with a \`code\` and a \`message\`.`;

/**
 * The OpenAPI document at /openapi.json, generated from the routes' schemas, and Swagger UI at
 * /swagger. The plugin's page points at a CDN by default; here it points at swagger-ui-dist's files,
 * embedded in the program, so the docs work offline and from the compiled binary.
 */
export function docsRoutes() {
  let app = new Elysia({ name: "docs" }).use(
    openapi({
      path: "/swagger",
      specPath: "/openapi.json",
      provider: "swagger-ui",
      documentation: {
        info: { title: "keypool", version: VERSION, description: DESCRIPTION },
        tags: [
          { name: "broker", description: "Hand out keys and take them back" },
          { name: "status", description: "What the pools look like" },
          { name: "admin", description: "Operate the daemon" },
          { name: "observability", description: "Metrics and the dashboard" },
        ],
        components: {
          securitySchemes: {
            apiKey: { type: "apiKey", in: "header", name: "X-API-Key", description: "server.api_key" },
            bearer: { type: "http", scheme: "bearer", description: "server.api_key as a Bearer token" },
          },
        },
        security: [{ apiKey: [] }, { bearer: [] }],
      },
      swagger: {
        theme: "/swagger/swagger-ui.css",
        cdn: "/swagger/swagger-ui-bundle.js",
        autoDarkMode: false,
        persistAuthorization: true,
        // The online validator badge would send the spec's URL to a third party.
        validatorUrl: null as unknown as string,
      },
    }),
  );
  for (const [route, asset] of Object.entries(SWAGGER_ASSETS)) {
    app = app.get(
      route,
      () =>
        new Response(Bun.file(asset.path), {
          headers: { "content-type": asset.type, "cache-control": "public, max-age=86400" },
        }),
      {
        detail: { hide: true },
      },
    );
  }
  return app;
}
