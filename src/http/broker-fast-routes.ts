import type { Server } from "bun";
import { ValidationError } from "elysia";
import { parseQueryFromURL } from "elysia/parse-query";
import { getSchemaValidator } from "elysia/schema";
import type { BrokerService } from "../broker/broker-service";
import type { Logger } from "../log";
import { readAnyJsonBody } from "./_any-json-body";
import { refuseDeepBody } from "./_json-depth";
import { decodeLate } from "./_late-decode";
import { type TakeQueryValue, brokerTake, releaseBody } from "./broker-routes";
import { answerError } from "./errors";
import { TakeQuery } from "./schemas";

// GET /take and POST /release as Bun.serve `routes`, outside Elysia. They are the broker's hot path,
// and Elysia's per-request work for them (its context, its hook chain, its response mapping, the
// interpreted TypeBox decode of the query) is a cost a bare Bun.serve route does not pay:
// `bench:broker --breakdown` measures it, as the app over a do-nothing store (api-stub) against bare.
//
// Everything else the Elysia path gives is kept by calling the same parts in the same order: the request
// guard, the JSON body reading, the depth check, Elysia's own validator over the schemas the Elysia routes
// declare (so the rules and their messages cannot drift apart), the same BrokerService calls, the same
// error mapping and log line. The Elysia definitions stay for the OpenAPI document and app.handle();
// test/broker-fast-routes.test.ts pins the answers the Elysia path gave, which these routes must give.

export interface FastRouteDeps {
  broker: BrokerService;
  logger: Logger;
  /** The listener's request guard (connection cap, Host, body size, API key): its refusal, if any. */
  refusal: (request: Request, server: Server<unknown> | null) => Response | undefined;
  /** The listener's idle timeout, turned off while a take waits in line (see brokerTake). */
  idleTimeoutSec: number;
}

type Handler = (request: Request, server: Server<unknown>) => Promise<Response> | Response;

// The query's `wait` is decoded on its own (decodeLate): Elysia runs TypeBox's interpreted decode over
// the whole query, twice, for any query with a number in it.
const takeQuery = decodeLate(TakeQuery);
// Built as Elysia builds a route's validators (which also turns unknown query fields away); copies, as
// the factory marks the schema it is given.
const takeQueryCheck = getSchemaValidator({ ...takeQuery.schema }, { normalize: false });
const releaseBodyCheck = getSchemaValidator({ ...releaseBody.schema }, { normalize: false });

/** The Bun.serve `routes` entries; anything else (other methods included) falls through to Elysia. */
export function brokerFastRoutes(deps: FastRouteDeps): Record<string, { GET?: Handler; POST?: Handler }> {
  const { broker, logger, refusal } = deps;
  const take = brokerTake(broker, deps.idleTimeoutSec);
  const fail = (request: Request, error: unknown, code = elysiaCodeOf(error)) =>
    answerError(logger, request, error, code);

  async function takeRoute(request: Request, server: Server<unknown>): Promise<Response> {
    const refused = refusal(request, server);
    if (refused) return refused;
    try {
      return Response.json(await take(readTakeQuery(request.url), request, server));
    } catch (error) {
      return fail(request, error);
    }
  }

  async function releaseRoute(request: Request, server: Server<unknown>): Promise<Response> {
    const refused = refusal(request, server);
    if (refused) return refused;
    let body: unknown;
    try {
      body = await readAnyJsonBody(request);
    } catch (error) {
      return fail(request, error, "PARSE");
    }
    try {
      return Response.json(await broker.release(releaseBody.decode(checkedReleaseBody(body))));
    } catch (error) {
      return fail(request, error);
    }
  }

  return { "/take": { GET: takeRoute }, "/release": { POST: releaseRoute } };
}

function readTakeQuery(url: string): TakeQueryValue {
  const start = url.indexOf("?");
  // No query is a valid one: every field is optional.
  if (start === -1) return {};
  const query = parseQueryFromURL(url, start + 1);
  if (!takeQueryCheck.Check(query)) throw new ValidationError("query", takeQueryCheck, query);
  return takeQuery.decode(query);
}

function checkedReleaseBody(body: unknown): typeof releaseBody.schema.static {
  refuseDeepBody(body);
  // Elysia fills a body's defaults into a copy before checking it: the schema has none to fill, but
  // the copy is kept, as it is what makes a body of `[]`, `null` or `1` fail as a missing `ok`.
  const fields = Object.assign({}, body);
  if (!releaseBodyCheck.Check(fields)) throw new ValidationError("body", releaseBodyCheck, fields);
  return fields as typeof releaseBody.schema.static;
}

/** The code Elysia's error hook would have been given for `error` (see toErrorResponse). */
function elysiaCodeOf(error: unknown): string {
  return error instanceof ValidationError ? "VALIDATION" : "UNKNOWN";
}
