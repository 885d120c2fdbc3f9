/**
 * `keypool setup --keys … --target … --port …`, as api-key-lb's setup does it: save its config.json,
 * and point the Hermes and OpenCode configs that call the target at the local gateway instead.
 * Every client change is planned first (a diff), then written with a backup.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { isSendableToken } from "../pool/token-rules";
import { type PlannedChange, unifiedDiff } from "./client-files";

export interface ApiKeyLbFlags {
  keys?: string;
  target?: string;
  port?: string;
}

export interface SavedApiKeyLbConfig {
  /** The whole file as it will be written: fields api-key-lb knows, and any others the user had. */
  file: Record<string, unknown>;
  keyCount: number;
  target: string;
  port: number;
}

const DEFAULT_PORT = 4577;

/**
 * The config file after the flags are applied to what `existing` holds (flags win, as in api-key-lb).
 * @returns the file, or the problems, each naming the flag (never a key's value).
 */
export function mergeApiKeyLbConfig(
  existing: Record<string, unknown>,
  flags: ApiKeyLbFlags,
): SavedApiKeyLbConfig | { problems: string[] } {
  const file: Record<string, unknown> = { ...existing };
  if (flags.keys) file.keys = flags.keys;
  if (flags.target) file.target = flags.target;
  if (flags.port) file.port = Number(flags.port);
  file.port ??= DEFAULT_PORT;
  const problems: string[] = [];
  const keys =
    typeof file.keys === "string"
      ? file.keys
          .split(",")
          .map((k) => k.trim())
          .filter(Boolean)
      : file.keys;
  if (!Array.isArray(keys) || keys.length === 0) {
    problems.push("--keys is required: keypool setup --keys key1,key2 --target https://api.z.ai [--port 4577]");
  } else {
    keys.forEach((key, index) => {
      if (typeof key !== "string" || /\s/.test(key) || !isSendableToken(key)) {
        const why = "has whitespace or a character an HTTP header cannot carry — separate keys with commas only";
        problems.push(`--keys: item ${index + 1} ${why}`);
      }
    });
  }
  const target = typeof file.target === "string" ? file.target : undefined;
  if (!target) problems.push("--target is required: keypool setup --keys key1,key2 --target https://api.z.ai");
  else if (!isHttpUrl(target)) {
    problems.push(`--target must be an http(s) URL such as https://api.z.ai, got "${target.slice(0, 60)}"`);
  }
  const port = file.port;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
    problems.push(`--port must be a port number 1–65535, got "${String(flags.port ?? port).slice(0, 12)}"`);
  }
  if (problems.length > 0) return { problems };
  // Saved as a list, as api-key-lb saves it.
  file.keys = keys;
  return { file, keyCount: (keys as string[]).length, target: target!, port: port as number };
}

/** The existing config file's object, or an empty one when there is none. */
export function readExistingConfig(path: string): Record<string, unknown> {
  if (!existsSync(path)) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new Error(`${path} is not valid JSON (${(error as Error).message}): fix or remove it, then run setup again`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error(`${path} must hold a JSON object: fix or remove it`);
  }
  return parsed as Record<string, unknown>;
}

/** Writes the config readable by its owner only: it holds the keys in clear. */
export function writeApiKeyLbConfig(path: string, file: Record<string, unknown>): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
}

/** A client file setup looked at: a change to make, or why it was left alone. */
export type ClientPlan = { kind: "change"; change: PlannedChange } | { kind: "skip"; path: string; why: string };

/** The Hermes and OpenCode config files under `home`, each with what setup would do to it. */
export function planClientPatches(home: string, target: string, port: number, label: Label): ClientPlan[] {
  const proxy = `http://127.0.0.1:${port}`;
  const host = new URL(target).hostname;
  const opencode = join(home, ".config", "opencode", "opencode.json");
  return [
    plan(join(home, ".hermes", "config.yaml"), "Hermes", (text) => patchHermes(text, host, proxy), host, label),
    plan(opencode, "OpenCode", (text) => patchOpenCode(text, host, proxy), host, label),
  ];
}

type Label = (path: string) => string;
type Edit = (text: string) => string | { unreadable: string };

function plan(path: string, client: string, edit: Edit, host: string, label: Label): ClientPlan {
  if (!existsSync(path)) return { kind: "skip", path, why: `no ${client} config — skipped` };
  const before = readFileSync(path, "utf8");
  const after = edit(before);
  if (typeof after !== "string") {
    return { kind: "skip", path, why: `${after.unreadable} — set its base URL to the gateway by hand` };
  }
  if (after === before) return { kind: "skip", path, why: `no base URL in it points at ${host} — left alone` };
  return { kind: "change", change: { path, before, after, diff: unifiedDiff(label(path), before, after) } };
}

/**
 * Hermes' YAML, edited as text so comments and layout stay: every `base_url:` whose host is the
 * target's gets the gateway's origin, its path kept (`https://api.z.ai/api/v4` → `http://127.0.0.1:4577/api/v4`).
 */
export function patchHermes(text: string, targetHost: string, proxy: string): string {
  const line = /^(\s*base_url:\s*["']?)https?:\/\/([^/\s"':]+)(:\d+)?/;
  return text
    .split("\n")
    .map((l) => {
      const match = line.exec(l);
      if (!match || match[2]!.toLowerCase() !== targetHost.toLowerCase()) return l;
      return match[1] + proxy + l.slice(match[0].length);
    })
    .join("\n");
}

/**
 * OpenCode's JSON: each provider's `options.baseURL` on the target's host gets the gateway's origin,
 * its path kept. Found by parsing, changed in the text, so the file's layout stays as it was.
 */
export function patchOpenCode(text: string, targetHost: string, proxy: string): string | { unreadable: string } {
  let parsed: { provider?: Record<string, { options?: { baseURL?: unknown } }> };
  try {
    parsed = JSON.parse(text);
  } catch {
    return { unreadable: "not plain JSON (comments?), so not edited" };
  }
  let after = text;
  for (const provider of Object.values(parsed?.provider ?? {})) {
    const baseUrl = provider?.options?.baseURL;
    if (typeof baseUrl !== "string") continue;
    let url: URL;
    try {
      url = new URL(baseUrl);
    } catch {
      continue;
    }
    if (url.hostname.toLowerCase() !== targetHost.toLowerCase()) continue;
    const replacement = `${proxy}${url.pathname === "/" ? "" : url.pathname}${url.search}`;
    const field = new RegExp(`("baseURL"\\s*:\\s*)${escapeRegExp(JSON.stringify(baseUrl))}`, "g");
    after = after.replace(field, (_, head: string) => `${head}${JSON.stringify(replacement)}`);
  }
  return after;
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:";
  } catch {
    return false;
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
