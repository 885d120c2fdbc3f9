/**
 * The model a gateway request names: in the JSON body (`model`, OpenAI and Anthropic) or in the path
 * (Gemini's `/v1beta/models/{model}:generateContent`, Vertex's `…/publishers/google/models/{model}:…`).
 * The path wins when it names one: Gemini's upstream routes by the path and ignores any body field.
 */
import { modelServedAs } from "../config/fallback";
import { isModelName } from "../pool/model-facts";
import { type GatewayRoute, modelIn, targetOf } from "./route";

/** Gemini's methods on a model; any other `:verb` is not a call of the model (and names none). */
const MODEL_METHODS = "generateContent|streamGenerateContent|countTokens|embedContent|batchEmbedContents";
const MODEL_IN_PATH = new RegExp(`/(?:tuned)?[mM]odels/([^/:?#]+):(?:${MODEL_METHODS})(?:[?#]|$)`);

/** `/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse` → `gemini-2.0-flash`. */
export function modelInPath(path: string): string | undefined {
  const found = MODEL_IN_PATH.exec(path)?.[1];
  if (found === undefined) return undefined;
  let name: string;
  try {
    name = decodeURIComponent(found);
  } catch {
    return undefined;
  }
  // Whatever a client writes becomes a pair in the store: only names shaped like a model count.
  return isModelName(name) ? name : undefined;
}

/** The model the request is for, from its path or its JSON body; undefined when it names none. */
export function requestModel(path: string, json: Record<string, unknown> | undefined): string | undefined {
  const fromPath = modelInPath(path);
  if (fromPath !== undefined) return fromPath;
  const fromBody = modelIn(json);
  return fromBody !== undefined && isModelName(fromBody) ? fromBody : undefined;
}

/**
 * The model each pool of the route is asked for when it serves the request: the path's as is (the
 * upstream routes by it), else the body's under that pool's `model_map` — the name `bodyFor` writes,
 * so the take, the release and the upstream all speak of one (key, model) pair. Undefined when the
 * request names no model.
 */
export function modelsByPool(
  route: GatewayRoute,
  path: string,
  json: Record<string, unknown> | undefined,
): ((pool: string) => string | undefined) | undefined {
  const fromPath = modelInPath(path);
  if (fromPath !== undefined) return () => fromPath;
  const fromBody = modelIn(json);
  if (fromBody === undefined || !isModelName(fromBody)) return undefined;
  if (!route.modelMap && route.fallbacks.every((f) => !f.modelMap)) return () => fromBody;
  return (pool) => {
    const sent = modelServedAs(targetOf(route, pool).modelMap, fromBody);
    return isModelName(sent) ? sent : undefined;
  };
}
