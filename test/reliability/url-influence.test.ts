/**
 * Scenario 14: no URL a request can influence may point keypool at a link-local or metadata address
 * (169.254.169.254 and friends). keypool's answer is that no request influences a URL at all:
 * upstream, check, refresh and webhook URLs come only from the config file (or the environment),
 * which the operator owns. These tests hold that line:
 *  - no API route accepts a URL-like field (checked on the routes' own validation schemas, so a new
 *    route that adds one fails here and must come with a link-local/metadata refusal of its own);
 *  - whatever path, Host or absolute-form target a gateway client sends, the request goes to the
 *    configured base_url and nowhere else.
 * Also covered: the gateway never follows an upstream's redirect (test/gateway-forwarding.test.ts);
 * an HTTP probe follows same-origin redirects only (test/probe.test.ts).
 */
import { describe, expect, it } from "bun:test";
import { startGateway } from "../helpers/gateway-harness";

/** Names and formats that would let a caller hand keypool a place to connect to. */
const URL_LIKE_NAME = /url|uri|endpoint|host|addr|webhook|callback|redirect|proxy|base|target|origin|domain|listen/i;

interface Schema {
  type?: string;
  format?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  additionalProperties?: boolean | Schema;
}

/** Every property name (dotted) and every string format in a schema, however nested. */
function fieldsOf(schema: Schema | undefined, path: string, out: string[]): void {
  if (!schema || typeof schema !== "object") return;
  if (schema.format) out.push(`${path} (format ${schema.format})`);
  for (const [name, child] of Object.entries(schema.properties ?? {})) {
    out.push(`${path}.${name}`);
    fieldsOf(child, `${path}.${name}`, out);
  }
  for (const child of [schema.items, ...(schema.anyOf ?? []), ...(schema.oneOf ?? []), ...(schema.allOf ?? [])])
    fieldsOf(child, path, out);
  if (typeof schema.additionalProperties === "object") fieldsOf(schema.additionalProperties, `${path}.*`, out);
}

describe("scenario 14: URLs a request could influence", () => {
  it("has no API route that accepts a URL, host or address in its path, query or body", async () => {
    await using gw = await startGateway();
    // The routes' own schemas (what validation enforces), not the OpenAPI rendering of them.
    const inputs: string[] = [];
    for (const route of gw.kp.daemon.app.routes) {
      const where = `${route.method} ${route.path}`;
      for (const param of route.path.match(/:\w+/g) ?? []) inputs.push(`${where} path.${param.slice(1)}`);
      const hooks = route.hooks as Record<string, Schema | undefined>;
      for (const part of ["params", "query", "body", "headers"]) fieldsOf(hooks[part], `${where} ${part}`, inputs);
    }
    // The walk must have found the inputs there are, or it proves nothing.
    expect(inputs).toContain("POST /pools/:pool/keys body.token");
    expect(inputs).toContain("POST /release body.lease");
    expect(inputs).toContain("GET /events query.since");
    const urlLike = inputs.filter(
      (i) => URL_LIKE_NAME.test(i.split(/[ .]/).at(-1)!) || /format (uri|url|hostname|ipv4|ipv6)/.test(i),
    );
    expect(urlLike).toEqual([]);
  });

  it("sends every gateway request to the configured upstream, whatever path, Host or target form the client uses", async () => {
    // The metadata address is an allowed host here, so the request gets past the Host check (class 6)
    // and what is tested is where the gateway sends it.
    await using gw = await startGateway({
      handler: () => Response.json({ ok: true }),
      config: (fakeUrl) => ({
        tokens_file: "tokens.txt",
        state_file: "state.db",
        cooldown_sec: 0,
        server: { addr: "127.0.0.1:0", allowed_hosts: ["169.254.169.254"] },
        upstream: { listen: "127.0.0.1:0", base_url: fakeUrl, cooldown_sec: 0 },
      }),
    });
    const { hostname, port } = new URL(gw.url);
    const targets = [
      "http://169.254.169.254/latest/meta-data/",
      "http://metadata.google.internal/computeMetadata/v1/",
      "//169.254.169.254/latest/meta-data/",
      "/@169.254.169.254/latest/meta-data/",
      "/%2F%2F169.254.169.254/latest",
      "/..%2F..%2F169.254.169.254",
      "/v1/../../169.254.169.254",
      "/v1/models?url=http://169.254.169.254/",
    ];
    for (const target of targets) {
      const ended = Promise.withResolvers<string>();
      let received = "";
      const socket = await Bun.connect({
        hostname,
        port: Number(port),
        socket: {
          data: (_s, d) => void (received += d.toString()),
          close: () => ended.resolve(received),
          error: (_s, e) => ended.reject(e),
        },
      });
      socket.write(
        `GET ${target} HTTP/1.1\r\nhost: 169.254.169.254\r\nx-forwarded-host: 169.254.169.254\r\nconnection: close\r\n\r\n`,
      );
      const answer = await ended.promise;
      // Either the fake upstream answered (through the gateway, with a pooled key) or the request
      // was refused before leaving; it never went anywhere else.
      const status = Number(answer.split(" ")[1]);
      expect({ target, ok: status === 200 ? answer.toLowerCase().includes("x-keypool-key:") : status === 400 }).toEqual(
        { target, ok: true },
      );
    }
    expect(gw.fake.calls.length).toBeGreaterThan(0);
    // Every call that left reached the one configured upstream, named by its own Host.
    expect(new Set(gw.fake.calls.map((c) => c.headers.host))).toEqual(new Set([`127.0.0.1:${gw.fake.port}`]));
  });
});
