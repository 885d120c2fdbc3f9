import { MAX_REQUEST_TOKENS, clampCount } from "../pool/bounds";

export interface TokenUsage {
  /** Every prompt token: read from the prompt cache, written to it, or neither. */
  input: number;
  output: number;
  /** Input tokens read from the provider's prompt cache, when the answer says. */
  cached?: number;
  /** Input tokens written to the provider's prompt cache (Anthropic's cache_creation_input_tokens), when the answer says. */
  cacheWrite?: number;
}

export interface UsageMeter {
  push(chunk: Uint8Array): void;
  /** The usage the body reported, once it has ended; undefined when it reported none. */
  finish(): TokenUsage | undefined;
}

/** JSON bodies larger than this are not parsed for usage: the answer streams on regardless. */
const MAX_JSON_BYTES = 4 * 1024 * 1024;
/** An SSE line longer than this is skipped: a usage event is small. */
const MAX_SSE_LINE = 1024 * 1024;
const NEWLINE = 0x0a;
const USAGE = Buffer.from('"usage"');
/**
 * Buffer's search, called on a chunk as it is: wrapping each chunk of a stream in a Buffer view to search
 * it cost more (0.1–0.4 µs a chunk) than the search itself.
 */
const indexOfBytes = Buffer.prototype.indexOf;

/**
 * Reads token usage out of an LLM API response as it streams past, without holding it up.
 * JSON bodies carry one `usage` object (OpenAI `prompt_tokens`/`completion_tokens`, Anthropic and
 * the Responses API `input_tokens`/`output_tokens`); event streams carry it in one or more events —
 * Anthropic sends input in `message_start` and a running output total in `message_delta` — so the
 * largest figure seen for each field wins. Prompt-cache figures are read too: OpenAI's
 * `prompt_tokens_details.cached_tokens` (a part of `prompt_tokens`), Anthropic's
 * `cache_read_input_tokens` and `cache_creation_input_tokens` (apart from its `input_tokens`, so they
 * are added in: `input` means every prompt token for both). Returns undefined for other content types.
 */
export function createUsageMeter(contentType: string | null): UsageMeter | undefined {
  const type = (contentType ?? "").toLowerCase();
  if (type.includes("text/event-stream")) return new EventStreamMeter();
  if (type.includes("json")) return new JsonMeter();
  return undefined;
}

// The meters are classes, not closures over an object literal: one is made per answer, and a class
// instance costs one object where the closures cost a function each and their scope.

class JsonMeter implements UsageMeter {
  private readonly chunks: Uint8Array[] = [];
  private size = 0;

  push(chunk: Uint8Array): void {
    this.size += chunk.length;
    if (this.size <= MAX_JSON_BYTES) this.chunks.push(chunk);
  }

  finish(): TokenUsage | undefined {
    const { chunks, size } = this;
    if (size > MAX_JSON_BYTES) return undefined;
    // Only the usage object is parsed, not the whole answer (which may be megabytes of embeddings),
    // and only the text from its key on is decoded.
    const body =
      chunks.length === 1 ? Buffer.from(chunks[0]!.buffer, chunks[0]!.byteOffset, size) : Buffer.concat(chunks);
    const key = body.lastIndexOf(USAGE);
    if (key === -1) return undefined;
    const usage = usageObjectText(body.toString("utf8", key));
    if (usage === undefined) return undefined;
    const tally = new Tally();
    tally.addUsageText(usage);
    return tally.result();
  }
}

class EventStreamMeter implements UsageMeter {
  /** Made only for a stream with a usage event (or a line cut between chunks): most never need one. */
  private decoder: TextDecoder | undefined;
  private readonly tally = new Tally();
  private pending = "";
  /**
   * Whether everything pushed so far ended at a line's end: nothing is then held back, in `pending` or
   * in the decoder (a character cut between chunks).
   */
  private atLineEnd = true;

  push(chunk: Uint8Array): void {
    // The usual chunk is whole events, none of them about usage: it is not even decoded.
    const endsLine = chunk[chunk.length - 1] === NEWLINE;
    if (this.atLineEnd && endsLine && indexOfBytes.call(chunk as Buffer, USAGE) === -1) return;
    this.atLineEnd = endsLine;
    this.decoder ??= new TextDecoder();
    this.takeLines(this.decoder.decode(chunk, { stream: true }));
  }

  finish(): TokenUsage | undefined {
    // Nothing held back (see atLineEnd): every line has been read already.
    if (this.decoder && !(this.atLineEnd && this.pending === "")) this.takeLines(`${this.decoder.decode()}\n`);
    return this.tally.result();
  }

  private takeLines(text: string): void {
    let pending = this.pending + text;
    // Most events carry no usage: unless the text holds one, only the unfinished last line is kept,
    // instead of cutting and trimming every line of every event.
    if (!pending.includes('"usage"')) {
      pending = pending.slice(pending.lastIndexOf("\n") + 1);
      this.pending = pending.length > MAX_SSE_LINE ? "" : pending;
      return;
    }
    let newline = pending.indexOf("\n");
    while (newline !== -1) {
      const line = pending.slice(0, newline).trim();
      pending = pending.slice(newline + 1);
      if (line.startsWith("data:") && line.includes('"usage"')) this.tally.addFromText(line.slice(5));
      newline = pending.indexOf("\n");
    }
    this.pending = pending.length > MAX_SSE_LINE ? "" : pending;
  }
}

/** The text of the last `"usage": {…}` object in a JSON document (usage objects hold no strings with braces). */
function usageObjectText(json: string): string | undefined {
  const key = json.lastIndexOf('"usage"');
  if (key === -1) return undefined;
  const start = json.indexOf("{", key);
  if (start === -1 || json.slice(key + 7, start).trim() !== ":") return undefined;
  let depth = 0;
  for (let i = start; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (c === 123) depth++;
    else if (c === 125 && --depth === 0) return json.slice(start, i + 1);
  }
  return undefined;
}

/** An answer's usage without prompt-cache details. */
const NO_DETAILS: Readonly<Record<string, unknown>> = Object.freeze({});

class Tally {
  private input = -1;
  private output = -1;
  private cacheRead = -1;
  private cacheWrite = -1;
  /** Anthropic counts cache reads and writes apart from input_tokens; OpenAI counts them in. */
  private cacheApart = false;

  addFromText(text: string): void {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return;
    }
    this.addUsageIn(value, 0);
  }

  /** The text of one usage object, as found by usageObjectText. */
  addUsageText(text: string): void {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return;
    }
    if (isObject(value)) this.add(value);
  }

  result(): TokenUsage | undefined {
    if (this.input < 0 && this.output < 0) return undefined;
    const read = Math.max(0, this.cacheRead);
    const write = Math.max(0, this.cacheWrite);
    const input = Math.min(MAX_REQUEST_TOKENS, Math.max(0, this.input) + (this.cacheApart ? read + write : 0));
    const usage: TokenUsage = { input, output: Math.max(0, this.output) };
    if (this.cacheRead >= 0) usage.cached = read;
    if (this.cacheWrite >= 0) usage.cacheWrite = write;
    return usage;
  }

  /** `usage` sits at the top (chat completions, message_delta) or one level down (message_start, response.completed). */
  private addUsageIn(value: unknown, depth: number): void {
    if (!isObject(value) || depth > 1) return;
    if (isObject(value.usage)) this.add(value.usage);
    for (const nested of Object.values(value))
      if (isObject(nested) && nested !== value.usage) this.addUsageIn(nested, depth + 1);
  }

  private add(usage: Record<string, unknown>): void {
    const input = firstCount(usage.prompt_tokens, usage.input_tokens);
    const output = firstCount(usage.completion_tokens, usage.output_tokens);
    if (input !== undefined) this.input = Math.max(this.input, input);
    if (output !== undefined) this.output = Math.max(this.output, output);
    // OpenAI: prompt_tokens_details (chat) or input_tokens_details (Responses API) .cached_tokens.
    const details = isObject(usage.prompt_tokens_details)
      ? usage.prompt_tokens_details
      : isObject(usage.input_tokens_details)
        ? usage.input_tokens_details
        : NO_DETAILS;
    const anthropicRead = firstCount(usage.cache_read_input_tokens);
    const anthropicWrite = firstCount(usage.cache_creation_input_tokens);
    if (anthropicRead !== undefined || anthropicWrite !== undefined) this.cacheApart = true;
    const read = firstCount(details.cached_tokens, anthropicRead);
    if (read !== undefined) this.cacheRead = Math.max(this.cacheRead, read);
    if (anthropicWrite !== undefined) this.cacheWrite = Math.max(this.cacheWrite, anthropicWrite);
  }
}

/**
 * The first of the (one or two) counts given, as a whole number no larger than one request can use: the
 * upstream's body is not trusted. Two parameters, not a rest list: it runs four times per answer.
 */
function firstCount(first: unknown, second?: unknown): number | undefined {
  const found = isCount(first) ? first : isCount(second) ? second : undefined;
  return found === undefined ? undefined : clampCount(found, MAX_REQUEST_TOKENS);
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
