/**
 * Gateway errors use the OpenAI error shape, which both OpenAI and Anthropic SDKs surface readably:
 * `{"error":{"message","type","code"}}`.
 */
export function gatewayError(status: number, code: string, message: string, headers: Record<string, string> = {}): Response {
  return Response.json({ error: { message, type: "keypool_error", code } }, { status, headers });
}
