/**
 * Reading what a peer sends without letting it decide how much memory that takes. `Response.text()`
 * and friends read a body whole, however large the peer makes it; these stop at a cap and cancel the
 * rest, which closes the connection, so the peer cannot keep the process busy either.
 */

export interface CappedBytes {
  bytes: Uint8Array;
  /** The body went on past the cap; what follows it was never read. */
  truncated: boolean;
}

/** At most `cap` bytes of `body`; rejects as the body does when the peer breaks it off. */
export async function readCapped(body: ReadableStream<Uint8Array> | null, cap: number): Promise<CappedBytes> {
  if (!body) return { bytes: new Uint8Array(0), truncated: false };
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (size + value.length >= cap) {
        chunks.push(value.subarray(0, cap - size));
        size = cap;
        // Exactly at the cap is not past it only if the body ends there; it is not worth a read to know.
        truncated = true;
        break;
      }
      chunks.push(value);
      size += value.length;
    }
  } finally {
    if (truncated) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
  return { bytes: concat(chunks, size), truncated };
}

/** A response's body as text, at most `cap` bytes of it. */
export async function readCappedText(response: Response, cap: number): Promise<{ text: string; truncated: boolean }> {
  const { bytes, truncated } = await readCapped(response.body, cap);
  return { text: new TextDecoder().decode(bytes), truncated };
}

/** The chunks as one array of `size` bytes (the first chunk itself when it is the only one). */
export function concat(chunks: Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const all = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.length;
  }
  return all;
}
