import { scrubSecrets } from "./pool/scrub-secrets";

/**
 * One line per event. JSON when stdout is not a terminal, readable text otherwise.
 * Fields must never carry a token: pass key ids, or masked values.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface LoggerOptions {
  level?: LogLevel;
  format?: "json" | "text";
  /** Where lines go; stderr by default so stdout stays clean for command output. */
  write?: (line: string) => void;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const min = ORDER[options.level ?? "info"];
  const format = options.format ?? (process.stderr.isTTY ? "text" : "json");
  const write = options.write ?? bufferedStderr();
  const emit = (level: LogLevel, message: string, fields: LogFields = {}) => {
    if (ORDER[level] < min) return;
    const time = new Date().toISOString();
    if (format === "json") {
      write(jsonLine(time, level, message, fields));
    } else {
      const rest = Object.entries(fields)
        .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
        .join(" ");
      write(`${time} ${level.toUpperCase().padEnd(5)} ${message}${rest ? ` ${rest}` : ""}`);
    }
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
  };
}

/**
 * `{"time","level","msg",...fields}` as one JSON object. The gateway writes a line per request: its fields
 * are serialised as they are and joined to the three leading ones, rather than copied into a new object
 * first. A field named like a leading one (its value wins, as it always did), or fields whose own toJSON
 * does not give an object, take the copy.
 */
function jsonLine(time: string, level: LogLevel, message: string, fields: LogFields): string {
  if (!("time" in fields || "level" in fields || "msg" in fields)) {
    const rest = JSON.stringify(fields);
    if (rest?.[0] === "{") {
      const head = `{"time":"${time}","level":"${level}","msg":${JSON.stringify(message)}`;
      return rest === "{}" ? `${head}}` : `${head},${rest.slice(1)}`;
    }
  }
  return JSON.stringify({ time, level, msg: message, ...fields });
}

/**
 * Lines written in one turn of the event loop go out in one write: a busy gateway logs a line per
 * request, and one syscall per line costs more than the request's own bookkeeping.
 */
function bufferedStderr(): (line: string) => void {
  let lines: string[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (lines.length === 0) return;
    const text = `${lines.join("\n")}\n`;
    lines = [];
    process.stderr.write(text);
  };
  process.once("exit", flush);
  return (line) => {
    lines.push(line);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** The header every error answer (and every gateway answer) carries, naming the log line that explains it. */
export const REQUEST_ID_HEADER = "x-keypool-request-id";

/** A short id that ties an answer to its log line: the answer says what went wrong, the log line says why. */
export function newRequestId(): string {
  return crypto.randomUUID().slice(0, 8);
}

/**
 * An unexpected error as log fields: its message and stack belong in the log, never in an answer.
 * Non-errors (a thrown string, a rejected undefined) are described as they are.
 */
export function errorFields(error: unknown): LogFields {
  // Scrubbed: an error may quote what it failed on, a credential included.
  if (!(error instanceof Error)) return { error: scrubSecrets(String(error)) };
  const stack = error.stack && scrubSecrets(error.stack);
  return { error: scrubSecrets(error.message), error_name: error.name, stack };
}

/** A request's path for an error's log line: no query, and nothing credential-like a client put in it. */
export function loggedPath(url: string): string {
  return scrubSecrets(requestPath(url));
}

/** The path of a request URL without its query, cheaply and without decoding (a malformed escape must not throw). */
export function requestPath(url: string): string {
  // Relative when the request named no host (HTTP/1.0 without Host).
  const start = url.startsWith("/") ? 0 : url.indexOf("/", url.indexOf("//") + 2);
  if (start === -1) return "/";
  const end = url.indexOf("?", start);
  return end === -1 ? url.slice(start) : url.slice(start, end);
}
