import { MAX_DURATION_SEC } from "../pool/bounds";
import { parseAddr } from "./addr";
/**
 * Field readers for config validation. Each reader reports a problem as an issue and returns
 * a default, so one pass over the file finds every mistake instead of stopping at the first.
 * Values are echoed in messages only when short and not from a secret-bearing field.
 */

/** Collects issues as `path: problem — fix`, once each. */
export class Issues {
  private readonly list = new Set<string>();
  private readonly secrets = new Map<string, string>();

  /**
   * Shows `value` as `label` in every message: values substituted from the environment are
   * often secrets, and a message that echoes a bad value would otherwise print them.
   * Very short values are left alone; they are not secrets and replacing them would garble messages.
   */
  redact(value: string, label: string): void {
    if (value.length >= 6) this.secrets.set(value, label);
  }

  add(path: string, message: string): void {
    this.list.add(path ? `${path}: ${message}` : message);
  }

  addAll(messages: Iterable<string>): void {
    for (const m of messages) this.list.add(m);
  }

  get all(): string[] {
    // Longest first, so a secret that contains another is replaced whole.
    const secrets = [...this.secrets].sort(([a], [b]) => b.length - a.length);
    const redacted = (issue: string) => secrets.reduce((text, [value, label]) => text.replaceAll(value, label), issue);
    return [...this.list].map((issue) => hideKeyLikeValues(redacted(issue)));
  }
}

export function joinPath(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/**
 * How a value looks in a message: short strings quoted, long ones — and short ones shaped like a credential
 * (a token put in the wrong field) — only by size.
 */
export function describe(value: unknown): string {
  if (value === null || value === undefined) return "nothing";
  if (typeof value === "string") {
    const shown = value.length <= 32 && !LOOKS_LIKE_A_KEY.test(value);
    return shown ? JSON.stringify(value) : `a string of ${value.length} characters`;
  }
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return typeof value;
}

// What an API key looks like: an unbroken run of letters and digits, both present. Paths, hosts and
// durations have separators or are short.
const LOOKS_LIKE_A_KEY = /^(?=[^"]*\d)(?=[^"]*[A-Za-z])[A-Za-z0-9_+=-]{16,}$/;

/**
 * The last guard before a message is shown: a quoted value that looks like a key is replaced by its
 * size. A key pasted into the wrong field is the likeliest mistake to quote one, and keypool cannot
 * know every secret (only its own tokens and the environment's values are redacted by name).
 */
function hideKeyLikeValues(message: string): string {
  return message.replace(/"([^"\n]*)"/g, (quoted, inner: string) =>
    LOOKS_LIKE_A_KEY.test(inner) ? `a string of ${inner.length} characters` : quoted,
  );
}

export function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

interface NumberRule {
  min: number;
  /** When true, `min` itself is rejected. */
  aboveMin?: boolean;
  /** Every number has a ceiling (from src/pool/bounds): nothing unbounded reaches the store or a timer. */
  max: number;
  integer?: boolean;
  /** What the number counts, for messages: "seconds", "retries". */
  unit?: string;
}

/**
 * A mapping in the config, read key by key. Every key a reader asks about becomes known,
 * so `done()` can flag the rest as unknown and suggest the closest known spelling.
 * A fallback section supplies values the mapping leaves out (top-level pool defaults).
 */
export class Section {
  private readonly known = new Set<string>();

  constructor(
    private readonly obj: Record<string, unknown>,
    readonly path: string,
    readonly issues: Issues,
    private readonly fallback?: Section,
  ) {}

  /**
   * The raw value at `key` and where it came from. null and "" count as absent: poolctl's files
   * (Go, where an empty string is the unset value) write `proxy: ""` or `api_key: ""` to mean "none".
   */
  entry(key: string): { value: unknown; path: string } | undefined {
    this.known.add(key);
    const value = this.obj[key];
    if (value !== undefined && value !== null && value !== "") return { value, path: joinPath(this.path, key) };
    return this.fallback?.entry(key);
  }

  /** Whether `key` is written here as an empty string: "none", where absence would mean a default. */
  isBlank(key: string): boolean {
    this.known.add(key);
    return this.obj[key] === "";
  }

  /** Declares keys as allowed here although another reader consumes them. */
  allow(keys: readonly string[]): void {
    for (const k of keys) this.known.add(k);
  }

  has(key: string): boolean {
    return this.entry(key) !== undefined;
  }

  keyPath(key: string): string {
    return joinPath(this.path, key);
  }

  string(key: string, fallback: string): string;
  string(key: string): string | undefined;
  string(key: string, fallback?: string): string | undefined {
    const e = this.entry(key);
    if (!e) return fallback;
    if (typeof e.value === "string") return e.value;
    this.issues.add(
      e.path,
      `expected a string, got ${describe(e.value)}${typeof e.value === "number" ? " — put it in quotes" : ""}`,
    );
    return fallback;
  }

  /** A string that must be present; `hint` says what to write. */
  required(key: string, hint: string): string | undefined {
    if (!this.has(key)) {
      this.issues.add(this.keyPath(key), `required — ${hint}`);
      return undefined;
    }
    return this.string(key);
  }

  number(key: string, rule: NumberRule & { default: number }): number;
  number(key: string, rule: NumberRule): number | undefined;
  number(key: string, rule: NumberRule & { default?: number }): number | undefined {
    const e = this.entry(key);
    if (!e) return rule.default;
    const v = e.value;
    const ok =
      typeof v === "number" &&
      Number.isFinite(v) &&
      (rule.aboveMin ? v > rule.min : v >= rule.min) &&
      v <= rule.max &&
      (!rule.integer || Number.isInteger(v));
    // -0 is a zero someone typed with a sign; stored, it would print as "0" anyway.
    if (ok) return v === 0 ? 0 : v;
    const kind = rule.integer ? "a whole number" : "a number";
    const unit = rule.unit ? ` of ${rule.unit}` : "";
    const range = `${rule.aboveMin ? ">" : "≥"} ${rule.min} and ≤ ${rule.max}`;
    this.issues.add(e.path, `expected ${kind}${unit} ${range}, got ${describe(v)}`);
    return rule.default;
  }

  /** A duration in seconds, at most MAX_DURATION_SEC unless `max` says less. */
  seconds(key: string, rule: { default: number; positive?: boolean; max?: number }): number;
  seconds(key: string, rule?: { positive?: boolean; max?: number }): number | undefined;
  seconds(key: string, rule: { default?: number; positive?: boolean; max?: number } = {}): number | undefined {
    const max = rule.max ?? MAX_DURATION_SEC;
    const asNumber: NumberRule = { min: 0, aboveMin: rule.positive, max, unit: "seconds" };
    return rule.default === undefined
      ? this.number(key, asNumber)
      : this.number(key, { ...asNumber, default: rule.default });
  }

  bool(key: string, fallback: boolean): boolean;
  bool(key: string): boolean | undefined;
  bool(key: string, fallback?: boolean): boolean | undefined {
    const e = this.entry(key);
    if (!e) return fallback;
    if (typeof e.value === "boolean") return e.value;
    this.issues.add(e.path, `expected true or false, got ${describe(e.value)}`);
    return fallback;
  }

  oneOf<T extends string>(key: string, values: readonly T[], fallback: T): T {
    const e = this.entry(key);
    if (!e) return fallback;
    if ((values as readonly unknown[]).includes(e.value)) return e.value as T;
    this.issues.add(e.path, `${describe(e.value)} is not one of ${values.join(", ")}`);
    return fallback;
  }

  /** A mapping of string to string, e.g. HTTP headers. Values are never echoed: they often hold credentials. */
  stringMap(key: string): Record<string, string> {
    const e = this.entry(key);
    if (!e) return {};
    if (!isMapping(e.value)) {
      this.issues.add(e.path, `expected a mapping of names to strings, got ${describe(e.value)}`);
      return {};
    }
    const out: Record<string, string> = {};
    for (const [name, v] of Object.entries(e.value)) {
      if (typeof v === "string") out[name] = v;
      else if (typeof v === "number") out[name] = String(v);
      else this.issues.add(joinPath(e.path, name), "expected a string value");
    }
    return out;
  }

  /**
   * A string that is a credential (an API key): never echoed, and replaced by its path wherever else
   * it turns up in a message. A number given here is a key YAML read as a number: it is not shown either.
   */
  secret(key: string): string | undefined {
    const e = this.entry(key);
    if (!e) return undefined;
    if (typeof e.value === "string" || typeof e.value === "number") {
      this.issues.redact(String(e.value), `(the value of ${e.path})`);
    }
    if (typeof e.value === "string") return e.value;
    const got = typeof e.value === "number" ? "a number — put it in quotes" : describe(e.value);
    this.issues.add(e.path, `expected a string, got ${got}`);
    return undefined;
  }

  /** A list of non-empty strings (one string is taken as a list of one). `secret` keeps values out of messages. */
  stringList(key: string, options: { secret?: boolean } = {}): string[] | undefined {
    const e = this.entry(key);
    if (!e) return undefined;
    const list = Array.isArray(e.value) ? e.value : [e.value];
    if (options.secret) {
      for (const v of list) {
        if (typeof v === "string" || typeof v === "number") this.issues.redact(String(v), `(a value of ${e.path})`);
      }
    }
    const badIndex = list.findIndex((v) => typeof v !== "string" || v.trim() === "");
    if (badIndex === -1) return list as string[];
    const got = options.secret ? "a value that is not a non-empty string" : describe(list[badIndex]);
    this.issues.add(
      Array.isArray(e.value) ? joinPath(e.path, String(badIndex)) : e.path,
      `expected a non-empty string, got ${got}`,
    );
    return undefined;
  }

  /** HTTP status codes given as one number or a list. */
  statuses(key: string, fallback: number[]): number[] {
    const e = this.entry(key);
    if (!e) return fallback;
    const list = Array.isArray(e.value) ? e.value : [e.value];
    const bad = list.filter((s) => !(Number.isInteger(s) && (s as number) >= 100 && (s as number) <= 599));
    if (list.length > 0 && bad.length === 0) return list as number[];
    const got = list.length === 0 ? "an empty list" : describe(bad[0]);
    this.issues.add(e.path, `expected an HTTP status (100–599) or a list of them, got ${got}`);
    return fallback;
  }

  /** An absolute URL with one of `protocols`; the value is not echoed since URLs can carry credentials. */
  url(key: string, protocols: readonly string[], example: string): string | undefined {
    const value = this.string(key);
    if (value === undefined) return undefined;
    const parsed = URL.canParse(value) ? new URL(value) : undefined;
    if (parsed && protocols.includes(parsed.protocol.replace(/:$/, ""))) return value;
    const path = this.entry(key)?.path ?? this.keyPath(key);
    this.issues.add(path, `expected a ${protocols.join("/")} URL such as ${example}`);
    return undefined;
  }

  /** A nested mapping, or undefined when absent (reported when present but not a mapping). */
  section(key: string): Section | undefined {
    const e = this.entry(key);
    if (!e) return undefined;
    if (isMapping(e.value)) return new Section(e.value, e.path, this.issues);
    this.issues.add(e.path, `expected a mapping of settings, got ${describe(e.value)}`);
    return undefined;
  }

  /** Reports every key no reader asked about. Call after all reads. */
  done(): void {
    for (const key of Object.keys(this.obj)) {
      if (this.known.has(key)) continue;
      const guess = closest(key, [...this.known]);
      const hint = guess ? `(did you mean "${guess}"?)` : `(allowed here: ${[...this.known].sort().join(", ")})`;
      this.issues.add(joinPath(this.path, key), `unknown key ${hint}`);
    }
  }
}

/** The candidate within a small edit distance of `word`, if any. */
export function closest(word: string, candidates: string[]): string | undefined {
  const limit = Math.max(1, Math.min(3, Math.floor(word.length / 3)));
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
    }
    prev = row;
  }
  return prev[b.length]!;
}

/** Reads an address field; reports a bad one with examples of good ones. */
export function readAddr(s: Section, key: string, fallback: string): { addr: string; host: string; port: number } {
  const addr = s.string(key, fallback);
  const parsed = parseAddr(addr);
  if (parsed) return { addr, ...parsed };
  s.issues.add(
    s.entry(key)?.path ?? s.keyPath(key),
    `${describe(addr)} is not host:port with a port 0–65535 — write e.g. ${fallback} or :${fallback.split(":").pop()}`,
  );
  return { addr: fallback, ...parseAddr(fallback)! };
}
