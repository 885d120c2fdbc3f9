import { Validator } from "@seriousme/openapi-schema-validator";
import { describe, expect, it } from "bun:test";
import { DOCS_PATHS } from "../src/http/docs-routes";
import { startTestDaemon } from "./helpers/daemon";

const CONFIG =
  "tokens_file: tokens.txt\nstate_file: state.db\nserver:\n  addr: 127.0.0.1:0\n  api_key: docs-admin-key-1234\n";
const TOKENS = "a,sk-test-aaaaaaaaaaaaaaaaaaaaaaaa\n";

type Operation = {
  summary?: string;
  security?: unknown[];
  parameters?: unknown[];
  requestBody?: unknown;
  responses: Record<string, { content?: Record<string, { schema?: Record<string, unknown> }> }>;
};
type Spec = {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { securitySchemes: Record<string, unknown> };
};

/** Every URL a page loads: src and href attributes, and CSS url(…) references. */
function referencedUrls(text: string): string[] {
  const attributes = [...text.matchAll(/\b(?:src|href)\s*=\s*["']([^"']+)["']/g)].map((m) => m[1]!);
  const cssUrls = [...text.matchAll(/url\(\s*["']?([^"')]+)["']?\s*\)/g)].map((m) => m[1]!);
  return [...attributes, ...cssUrls];
}

describe("GET /openapi.json", () => {
  it("is a valid OpenAPI 3 document that lists every route the API serves, without the API key", async () => {
    await using kp = await startTestDaemon(CONFIG, TOKENS);
    const response = await kp.fetch("/openapi.json");
    expect(response.status).toBe(200);
    const spec = (await response.json()) as Spec;
    const result = await new Validator().validate(spec as unknown as Record<string, unknown>);
    expect(result.errors).toBeUndefined();
    expect([result.valid, spec.openapi.startsWith("3.")]).toEqual([true, true]);

    // The docs' own routes (the spec, the page and its assets) describe the API rather than belong to it.
    const routes = kp.daemon.app.routes
      .filter((r) => !DOCS_PATHS.includes(r.path))
      .map((r) => `${r.method} ${r.path.replace(/:(\w+)/g, "{$1}")}`);
    const documented = Object.entries(spec.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(documented.sort()).toEqual(routes.sort());
  });

  it("gives every operation a summary, a 200 schema with an example, and error shapes where auth applies", async () => {
    await using kp = await startTestDaemon(CONFIG, TOKENS);
    const spec = (await (await kp.fetch("/openapi.json")).json()) as Spec;
    expect(Object.keys(spec.components.securitySchemes).sort()).toEqual(["apiKey", "bearer"]);
    for (const [path, ops] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const where = `${method.toUpperCase()} ${path}`;
        expect({ where, summary: typeof op.summary }).toEqual({ where, summary: "string" });
        const ok = Object.values(op.responses["200"]?.content ?? {})[0]?.schema;
        expect({ where, example: Boolean(ok && JSON.stringify(ok).includes('"examples"')) }).toEqual({
          where,
          example: true,
        });
        const isPublic = Array.isArray(op.security) && op.security.length === 0;
        if (isPublic) continue;
        const unauthorized = op.responses["401"]?.content?.["application/json"]?.schema as
          | { properties?: Record<string, unknown> }
          | undefined;
        expect({ where, errorShape: Object.keys(unauthorized?.properties ?? {}) }).toEqual({
          where,
          errorShape: ["error"],
        });
      }
    }
    expect(spec.paths["/release"]!.post!.requestBody).toBeDefined();
    expect(spec.paths["/take"]!.get!.parameters).toEqual(
      ["pool", "session", "wait", "model"].map((name) => expect.objectContaining({ name, in: "query" })),
    );
    expect(Object.keys(spec.paths["/take"]!.get!.responses).sort()).toEqual(["200", "400", "401", "404", "503"]);
  });
});

describe("GET /swagger", () => {
  it("serves Swagger UI whose every asset comes from keypool itself, without the API key", async () => {
    await using kp = await startTestDaemon(CONFIG, TOKENS);
    const page = await kp.fetch("/swagger");
    expect([page.status, page.headers.get("content-type")]).toEqual([200, "text/html; charset=utf8"]);
    const html = await page.text();
    expect(html).not.toMatch(/https?:\/\//);
    const assets = referencedUrls(html);
    expect(assets.sort()).toEqual(["/swagger/swagger-ui-bundle.js", "/swagger/swagger-ui.css"]);
    for (const asset of assets) {
      const response = await kp.fetch(asset);
      expect({ asset, status: response.status }).toEqual({ asset, status: 200 });
      const text = await response.text();
      expect(text.length).toBeGreaterThan(10_000);
      if (asset.endsWith(".css")) expect(referencedUrls(text).filter((u) => !u.startsWith("data:"))).toEqual([]);
    }
    // The page asks for the spec relative to itself.
    expect(html).toContain('"url":"openapi.json"');
  });
});
