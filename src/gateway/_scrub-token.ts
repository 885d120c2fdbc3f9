import { tokenSpellings } from "../pool/token-spellings";

export const REDACTED = "[redacted]";
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** The encodings keypool can undo to look inside an error body, by their Content-Encoding names. */
const DECODERS: Record<string, string> = {
  gzip: "gzip",
  "x-gzip": "gzip",
  deflate: "deflate",
  br: "brotli",
  zstd: "zstd",
};

/**
 * An upstream's response headers with the key it was sent replaced by `[redacted]`, in any spelling
 * (see tokenSpellings): a redirect's Location carries `?key=…` when the key goes in the query, and
 * some upstreams echo the credential in a debug header. A header whose name holds the key is dropped.
 */
export function scrubTokenFromHeaders(headers: Headers, token: string): Headers {
  const spellings = tokenSpellings(token);
  // One search over every name and value, joined by a character no header holds, instead of two per
  // header: a match inside any one of them is a match in the whole, and almost every answer has none.
  // A match across two is only a false alarm: the copy below then replaces nothing.
  let all = "";
  for (const [name, value] of headers) all += `${name}\n${value}\n`;
  if (!spellings.test(all)) return headers;
  const scrubbed = new Headers();
  for (const [name, value] of headers) {
    if (!spellings.test(name)) scrubbed.append(name, spellings.replace(value, REDACTED));
  }
  return scrubbed;
}

/** A short text from the upstream (its status line's reason phrase) with the key replaced by `[redacted]`. */
export function scrubTokenFromText(text: string, token: string): string {
  return text && tokenSpellings(token).replace(text, REDACTED);
}

/**
 * An upstream error body, at most `cap` bytes as the client will get it, with the key it was sent
 * replaced by `[redacted]`: some providers quote the key back ("invalid key sk-…"), and the gateway's
 * client must never receive a pooled key. A compressed body is decompressed (to `cap` bytes at most)
 * to be searched, and sent decompressed: `headers` loses its Content-Encoding then. One in an
 * encoding keypool cannot undo cannot be searched, so the client gets a note instead of it.
 * Content-Length is dropped whenever the body changes.
 */
export async function scrubTokenFromBody(
  bytes: Uint8Array,
  headers: Headers,
  token: string,
  cap: number,
): Promise<Uint8Array> {
  const codings = (headers.get("content-encoding") ?? "")
    .split(",")
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c && c !== "identity");
  let plain = bytes;
  if (codings.length > 0 && bytes.length > 0) {
    headers.delete("content-encoding");
    headers.delete("content-length");
    const decoded = await decompress(bytes, codings, cap);
    if (!decoded) {
      headers.set("content-type", "text/plain; charset=utf-8");
      const note = `[keypool: the upstream's error body was in an encoding keypool cannot read (${codings.join(", ")}), so it was left out]`;
      return encoder.encode(note);
    }
    plain = decoded;
  }
  const text = decoder.decode(plain);
  const spellings = tokenSpellings(token);
  if (!spellings.test(text)) return plain;
  headers.delete("content-length");
  return encoder.encode(spellings.replace(text, REDACTED));
}

/** Undoes `codings` (listed in the order they were applied); undefined when one is unknown or the data is not in it. */
async function decompress(bytes: Uint8Array, codings: string[], cap: number): Promise<Uint8Array | undefined> {
  let stream: ReadableStream<Uint8Array> = new Blob([bytes]).stream();
  for (const coding of [...codings].reverse()) {
    const format = DECODERS[coding];
    if (!format) return undefined;
    // Bun's DecompressionStream also reads brotli and zstd, which the DOM typings do not list.
    const decoder = new DecompressionStream(format as never) as unknown as ReadableWritablePair<Uint8Array, Uint8Array>;
    stream = stream.pipeThrough(decoder);
  }
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < cap) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
    }
  } catch {
    // A body cut at the cap ends mid-stream: what decoded before the cut is kept.
    if (size === 0) return undefined;
  } finally {
    await reader.cancel().catch(() => {});
  }
  return new Uint8Array(await new Blob(chunks).arrayBuffer()).subarray(0, cap);
}
