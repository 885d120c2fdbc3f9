import { type Logger, REQUEST_ID_HEADER, errorFields, newRequestId } from "../log";

/**
 * Gateway errors use the OpenAI error shape, which both OpenAI and Anthropic SDKs surface readably:
 * `{"error":{"message","type","code"}}`.
 */
export function gatewayError(status: number, code: string, message: string, headers: Record<string, string> = {}): Response {
  return Response.json({ error: { message, type: "keypool_error", code } }, { status, headers });
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
