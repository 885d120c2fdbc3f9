import { createHash } from "node:crypto";

/**
 * Where a request's session id comes from, for sticky sessions: a conversation keeps landing on the
 * key that holds its prompt cache. Pure: takes the header value and the parsed JSON body.
 */

/**
 * Body fields that name a session, tried in this order; `a.b` is a nested field, `messages[].a.b` the
 * field in any message (the first message that has it). The camelCase spellings and the per-message
 * ids are those agent clients send (OpenCode, custom agents); explicit session ids come before the
 * user-level ones, which may span many conversations.
 */
export const SESSION_BODY_FIELDS = [
  "session_id",
  "sessionId",
  "conversation_id",
  "conversationId",
  "thread_id",
  "metadata.session_id",
  "messages[].metadata.session_id",
  "messages[].custom_fields.session_id",
  "metadata.user_id",
  "user",
] as const;

const EACH_MESSAGE = "messages[].";

/** A body field as a path: `each` when it is looked up in every message. */
interface FieldPath {
  each: boolean;
  parts: readonly string[];
}

// Split once here: every request without a session header walks the whole list.
const BODY_FIELD_PATHS: readonly FieldPath[] = SESSION_BODY_FIELDS.map((field) => {
  const each = field.startsWith(EACH_MESSAGE);
  return { each, parts: (each ? field.slice(EACH_MESSAGE.length) : field).split(".") };
});

/** How much of the system prompt the fingerprint reads: enough to tell prompts apart, cheap to hash. */
export const FINGERPRINT_PROMPT_CHARS = 500;

/** Ids longer than this are stored as a hash: a client must not be able to bloat the sessions table. */
export const MAX_SESSION_ID_CHARS = 200;

export type SessionSource = "header" | "body" | "fingerprint";

export interface SessionId {
  id: string;
  source: SessionSource;
}

export interface SessionInput {
  /** The value of the pool's session header, if the request had one. */
  header?: string | null;
  /** The request body, parsed as JSON; anything else (or nothing) is ignored. */
  body?: unknown;
  /** Whether a request without an explicit id is identified by model + system prompt (default true). */
  fingerprint?: boolean;
}

/**
 * The request's session id: the header wins, then the body's fields, then (when allowed) the
 * fingerprint. Undefined when the request names no session — it then rotates like any other.
 */
export function sessionIdOf(input: SessionInput): SessionId | undefined {
  const fromHeader = normalize(input.header);
  if (fromHeader) return { id: fromHeader, source: "header" };
  if (!isObject(input.body)) return undefined;
  for (const field of BODY_FIELD_PATHS) {
    const id = normalize(fieldAt(input.body, field));
    if (id) return { id, source: "body" };
  }
  if (input.fingerprint === false) return undefined;
  const id = fingerprintOf(input.body);
  return id ? { id, source: "fingerprint" } : undefined;
}

/**
 * `fp:<model>:<hash>` from the model and the first FINGERPRINT_PROMPT_CHARS of the system prompt —
 * OpenAI's first message when its role is system (or developer), Anthropic's top-level `system`.
 * Without a system prompt there is no fingerprint: every prompt-less request of one model would
 * otherwise share one key.
 */
export function fingerprintOf(body: Record<string, unknown>): string | undefined {
  const prompt = systemPromptOf(body);
  if (!prompt) return undefined;
  const model = typeof body.model === "string" ? body.model.slice(0, 100) : "";
  const hash = createHash("sha256").update(prompt.slice(0, FINGERPRINT_PROMPT_CHARS)).digest("hex").slice(0, 32);
  return `fp:${model}:${hash}`;
}

/** Anthropic's top-level `system`, else the first system (or developer) message, wherever it stands. */
function systemPromptOf(body: Record<string, unknown>): string | undefined {
  if (body.system !== undefined) return textOf(body.system);
  if (!Array.isArray(body.messages)) return undefined;
  // Not only the first message: some clients put a user preamble before the system prompt.
  const system = body.messages.find((m) => isObject(m) && (m.role === "system" || m.role === "developer"));
  return isObject(system) ? textOf(system.content) : undefined;
}

/** A string, or the text of a list of content blocks (`{type: "text", text}`), joined. */
function textOf(content: unknown): string | undefined {
  if (typeof content === "string") return content || undefined;
  if (!Array.isArray(content)) return undefined;
  const text = content.map((block) => (isObject(block) && typeof block.text === "string" ? block.text : "")).join("");
  return text || undefined;
}

function fieldAt(body: Record<string, unknown>, path: FieldPath): unknown {
  if (path.each) {
    if (!Array.isArray(body.messages)) return undefined;
    for (const message of body.messages) {
      const value = isObject(message) ? valueAt(message, path.parts) : undefined;
      if (normalize(value)) return value;
    }
    return undefined;
  }
  return valueAt(body, path.parts);
}

function valueAt(body: Record<string, unknown>, parts: readonly string[]): unknown {
  let value: unknown = body;
  for (const part of parts) {
    if (!isObject(value)) return undefined;
    value = value[part];
  }
  return value;
}

/** A usable id: a non-empty string or a finite number; an overlong one is replaced by its hash. */
function normalize(value: unknown): string | undefined {
  const id =
    typeof value === "string" ? value.trim() : typeof value === "number" && Number.isFinite(value) ? String(value) : "";
  if (id === "") return undefined;
  if (id.length <= MAX_SESSION_ID_CHARS) return id;
  return `sha256:${createHash("sha256").update(id).digest("hex")}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
