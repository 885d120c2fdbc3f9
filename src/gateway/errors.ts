import { type Logger, REQUEST_ID_HEADER, errorFields, loggedPath, newRequestId } from "../log";

/**
 * Gateway errors use the OpenAI error shape, which both OpenAI and Anthropic SDKs surface readably:
 * `{"error":{"message","type","code"}}`.
 */
export function gatewayError(
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): Response {
  return Response.json({ error: { message, type: "keypool_error", code } }, { status, headers });
}

/**
 * A gateway request turned away before any pool saw it (a foreign Host, the listener at its cap): answered
 * in the OpenAI error shape with a request id, and logged under that id like every other refusal.
 */
export function refuseGatewayRequest(
  logger: Logger,
  request: Request,
  refusal: { status: number; code: string; message: string; headers?: Record<string, string> },
): Response {
  const requestId = newRequestId();
  const fields = {
    request_id: requestId,
    method: request.method,
    path: loggedPath(request.url),
    status: refusal.status,
  };
  logger.info("gateway request refused", { ...fields, code: refusal.code });
  const headers = { ...refusal.headers, [REQUEST_ID_HEADER]: requestId };
  return gatewayError(refusal.status, refusal.code, refusal.message, headers);
}

/** Bun.serve's last resort on a gateway listener: the OpenAI error shape, the details only in the log. */
export function uncaughtGatewayAnswer(logger: Logger): (error: Error) => Response {
  return function answerUncaught(error) {
    const requestId = newRequestId();
    logger.error("gateway request failed", { request_id: requestId, ...errorFields(error) });
    const message = `keypool failed to handle this request; the keypool log has the details under ${requestId}`;
    return gatewayError(500, "internal_error", message, { [REQUEST_ID_HEADER]: requestId });
  };
}
