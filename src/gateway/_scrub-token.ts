const decoder = new TextDecoder();
const encoder = new TextEncoder();

/**
 * An upstream error body with the key it was sent replaced by `[redacted]` (as in the log): some providers
 * quote the key back in an error message ("invalid key sk-…"), and the gateway's client must never
 * receive a pooled key. Compressed bodies pass untouched (keypool does not decompress); the header
 * length is dropped when the body changes, so the new one is sent.
 */
export function scrubTokenFromBody(bytes: Uint8Array, headers: Headers, token: string): Uint8Array {
  const encoding = headers.get("content-encoding");
  if ((encoding && encoding !== "identity") || bytes.length < token.length) return bytes;
  const text = decoder.decode(bytes);
  const forms = [token, encodeURIComponent(token)];
  if (!forms.some((form) => text.includes(form))) return bytes;
  headers.delete("content-length");
  return encoder.encode(forms.reduce((out, form) => out.replaceAll(form, "[redacted]"), text));
}
