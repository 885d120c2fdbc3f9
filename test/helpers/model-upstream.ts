import type { FakeHandler, RecordedCall } from "./fake-upstream";
import { TOKENS, keyOfCall, simulated } from "./gateway-harness";

/**
 * A provider that limits each key per model and lets some keys use only some models, in OpenAI's or
 * Anthropic's words (by the path, as the simulated API tells them apart). Everything else is the
 * simulated API's answer, so the real SDKs read it.
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
    const anthropic = call.path.startsWith("/v1/messages");
    const key = keyOfCall(call, tokens);
    const model = modelOf(call);
    if (key !== undefined && model !== undefined) {
      if (options.lacks?.[model]?.includes(key)) return modelNotFound(model, anthropic);
      if (limited.has(pair(model, key))) return rateLimited(anthropic);
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
  return calls.filter((c) => keyOfCall(c, tokens) === key && modelOf(c) === model).length;
}

function modelOf(call: RecordedCall): string | undefined {
  try {
    return (JSON.parse(call.body) as { model?: string }).model;
  } catch {
    return undefined;
  }
}

/** OpenAI: 404 model_not_found; Anthropic: 404 not_found_error naming the model. */
function modelNotFound(model: string, anthropic: boolean): Response {
  if (anthropic) {
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

function rateLimited(anthropic: boolean): Response {
  const headers = { "retry-after": "60" };
  if (anthropic) {
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
