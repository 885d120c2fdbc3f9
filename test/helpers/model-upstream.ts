import type { FakeHandler, RecordedCall } from "./fake-upstream";
import { SIMULATED_TEXT } from "../../src/demo/simulated-upstream";
import { TOKENS, keyOfCall, simulated } from "./gateway-harness";

/**
 * A provider that limits each key per model and lets some keys use only some models, in OpenAI's,
 * Anthropic's or Gemini's words (by the path: Gemini names the model there, and takes the key as
 * `?key=`). Everything else is the simulated API's answer, so the real SDKs read it.
 *
 *   const upstream = perModelUpstream({ lacks: { "m-big": ["b"] } });
 *   upstream.limit("m-big", "a");                 // a answers 429 for m-big until lifted
 *   callsOf(fake.calls, "a", "m-big");            // how often the upstream saw that pair
 */
export interface PerModelUpstream {
  handler: FakeHandler;
  /** The key answers 429 (Retry-After 60) for the model until `lift`. */
  limit(model: string, key: string): void;
  lift(model: string, key: string): void;
}

export interface PerModelOptions {
  /** model → the keys (by id) that cannot use it: answered 404 as the provider does. */
  lacks?: Record<string, string[]>;
  tokens?: Record<string, string>;
}

export function perModelUpstream(options: PerModelOptions = {}): PerModelUpstream {
  const tokens = options.tokens ?? TOKENS;
  const ok = simulated(Object.fromEntries(Object.keys(tokens).map((id) => [id, "ok"])), tokens as typeof TOKENS);
  const limited = new Set<string>();
  const pair = (model: string, key: string) => `${model}\u0000${key}`;

  const handler: FakeHandler = (req, call) => {
    const dialect = dialectOf(call);
    const key = keyOf(call, tokens);
    const model = modelOf(call);
    if (key !== undefined && model !== undefined) {
      if (options.lacks?.[model]?.includes(key)) return modelNotFound(model, dialect);
      if (limited.has(pair(model, key))) return rateLimited(dialect);
    }
    if (dialect === "gemini") {
      if (key === undefined)
        return Response.json({ error: { code: 400, status: "INVALID_ARGUMENT" } }, { status: 400 });
      return Response.json({ candidates: [{ content: { role: "model", parts: [{ text: SIMULATED_TEXT }] } }] });
    }
    return ok(req, call);
  };

  return {
    handler,
    limit: (model, key) => limited.add(pair(model, key)),
    lift: (model, key) => limited.delete(pair(model, key)),
  };
}

/** Upstream calls made with key `key` (by id) for `model`. */
export function callsOf(calls: RecordedCall[], key: string, model: string, tokens = TOKENS): number {
  return calls.filter((c) => keyOf(c, tokens) === key && modelOf(c) === model).length;
}

type Dialect = "openai" | "anthropic" | "gemini";

const GEMINI_CALL = /\/models\/([^/:?]+):generateContent/;

function dialectOf(call: RecordedCall): Dialect {
  if (GEMINI_CALL.test(call.path)) return "gemini";
  return call.path.startsWith("/v1/messages") ? "anthropic" : "openai";
}

function keyOf(call: RecordedCall, tokens: Record<string, string>): string | undefined {
  if (dialectOf(call) !== "gemini") return keyOfCall(call, tokens);
  const token = new URL(call.path, "http://upstream").searchParams.get("key");
  return Object.entries(tokens).find(([, t]) => t === token)?.[0];
}

function modelOf(call: RecordedCall): string | undefined {
  const inPath = GEMINI_CALL.exec(call.path)?.[1];
  if (inPath !== undefined) return inPath;
  try {
    return (JSON.parse(call.body) as { model?: string }).model;
  } catch {
    return undefined;
  }
}

/** OpenAI: 404 model_not_found; Anthropic: 404 not_found_error naming the model; Gemini: 404 NOT_FOUND. */
function modelNotFound(model: string, dialect: Dialect): Response {
  if (dialect === "gemini") {
    const message = `models/${model} is not found for API version v1beta, or is not supported for generateContent.`;
    return Response.json({ error: { code: 404, message, status: "NOT_FOUND" } }, { status: 404 });
  }
  if (dialect === "anthropic") {
    return Response.json(
      { type: "error", error: { type: "not_found_error", message: `model: ${model}` } },
      { status: 404 },
    );
  }
  const message = `The model \`${model}\` does not exist or you do not have access to it.`;
  return Response.json(
    { error: { message, type: "invalid_request_error", param: null, code: "model_not_found" } },
    { status: 404 },
  );
}

function rateLimited(dialect: Dialect): Response {
  const headers = { "retry-after": "60" };
  if (dialect === "gemini") {
    const error = {
      code: 429,
      message: "Resource has been exhausted.",
      status: "RESOURCE_EXHAUSTED",
    };
    return Response.json({ error }, { status: 429, headers });
  }
  if (dialect === "anthropic") {
    return Response.json(
      {
        type: "error",
        error: { type: "rate_limit_error", message: "Number of requests has exceeded your rate limit" },
      },
      { status: 429, headers },
    );
  }
  return Response.json(
    { error: { message: "Rate limit reached for requests", type: "requests", code: "rate_limit_exceeded" } },
    { status: 429, headers },
  );
}
