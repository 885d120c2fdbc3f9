import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import Ajv from "ajv";
import { describe, expect, it } from "bun:test";
import { parse as parseYaml, stringify } from "yaml";
import { listCommands } from "../../scripts/cli-docs";
import { ConfigError } from "../../src/config/errors";
import { parseConfig } from "../../src/config/load";
import { startTestDaemon } from "../helpers/daemon";
import { tempDir } from "../helpers/temp-dir";
import { REPO, type Snippet, docPages, shellCommands, shellLines, snippetsOf, where } from "./_snippets";

/**
 * Every snippet in the docs is checked, so a page that drifts from the code fails CI:
 * YAML configs validate, `keypool …` command lines name real commands and flags, JSON answers shown after
 * a curl call match the route's schema in /openapi.json, and every relative link resolves.
 * A block that is not meant as any of these says so in a comment just above it (`<!-- not keypool config -->`).
 */

const pages = docPages();
const snippets = pages.flatMap(snippetsOf);

/** A config snippet without its own keys is a fragment: it is checked on top of this. */
const BASE_CONFIG = { tokens_file: "tokens.txt" };
const TWO_KEYS = "doc-1,sk-doc-aaaaaaaaaaaaaaaaaaaaaaaa\ndoc-2,sk-doc-bbbbbbbbbbbbbbbbbbbbbbbb\n";

function isConfigYaml(s: Snippet): boolean {
  return (s.lang === "yaml" || s.lang === "yml") && !s.before.includes("<!-- not keypool config -->");
}

/** The files a config names (tokens files, key files), created in `dir` so validation can read them. */
function provideFiles(tree: Record<string, unknown>, dir: string): void {
  const pools = [tree, ...Object.values((tree.pools as Record<string, Record<string, unknown>>) ?? {})];
  for (const pool of pools) {
    if (typeof pool?.tokens_file === "string") writeFile(dir, pool.tokens_file, TWO_KEYS);
  }
  const keyFile = (tree.store as Record<string, unknown> | undefined)?.encryption_key_file;
  if (typeof keyFile === "string") writeFile(dir, keyFile, `${"ab".repeat(32)}\n`);
}

function writeFile(dir: string, path: string, text: string): void {
  if (path.startsWith("/")) return; // absolute paths in examples are the reader's, not ours
  writeFileSync(join(dir, path), text);
}

describe("the docs' YAML configs", () => {
  const configs = snippets.filter(isConfigYaml);

  it("finds the config examples", () => {
    expect(configs.length).toBeGreaterThan(10);
  });

  for (const snippet of configs) {
    it(`${where(snippet)} validates`, () => {
      using dir = tempDir();
      const parsed = parseYaml(snippet.text) as Record<string, unknown>;
      const whole = "tokens_file" in parsed || "pools" in parsed;
      const tree = whole ? parsed : { ...BASE_CONFIG, ...parsed };
      provideFiles(tree, dir.path);
      const env = Object.fromEntries(
        [...snippet.text.matchAll(/\$\{(\w+)/g)].map((m) => [m[1]!, "doc-value-0123456789"]),
      );
      const problems = (() => {
        try {
          parseConfig(whole ? snippet.text : stringify(tree), { baseDir: dir.path, env });
          return [];
        } catch (error) {
          if (error instanceof ConfigError) return error.issues;
          throw error;
        }
      })();
      // Absolute paths (e.g. /etc/keypool/master.key) belong to the reader's machine.
      expect(problems.filter((p) => !/cannot read "\//.test(p))).toEqual([]);
    });
  }
});

describe("the docs' keypool command lines", async () => {
  const commands = await listCommands();
  const byPath = new Map(commands.map((c) => [c.path.join(" "), c]));
  const lines = snippets
    .filter((s) => ["sh", "bash", "console", ""].includes(s.lang))
    .flatMap((s) => shellLines(s.text).map((l) => ({ ...l, snippet: s })))
    .flatMap((l) => shellCommands(l.command).map((words) => ({ words, at: where(l.snippet) })))
    .filter(({ words }) => words[0] === "keypool");

  it("finds the command examples", () => {
    expect(lines.length).toBeGreaterThan(10);
  });

  for (const { words, at } of lines) {
    it(`${at}: ${words.join(" ").slice(0, 80)}`, () => {
      const path: string[] = [];
      let rest = words.slice(1);
      while (
        rest.length > 0 &&
        byPath.has([...path, rest[0]].join(" ")) === false &&
        hasChild(byPath, [...path, rest[0]!])
      ) {
        path.push(rest[0]!);
        rest = rest.slice(1);
      }
      if (rest.length > 0 && byPath.has([...path, rest[0]].join(" "))) {
        path.push(rest[0]!);
        rest = rest.slice(1);
      }
      const command = byPath.get(path.join(" "));
      expect({ at, command: command ? path.join(" ") : `no such command: ${words.slice(1, 3).join(" ")}` }).toEqual({
        at,
        command: path.join(" "),
      });
      const known = new Set(
        Object.entries(command!.args).flatMap(([name, arg]) => [name, ...[("alias" in arg && arg.alias) || []].flat()]),
      );
      known.add("help");
      const unknown = rest
        .filter((w) => /^--?[A-Za-z]/.test(w))
        .map((w) => w.replace(/^--?/, "").split("=")[0]!)
        .filter((flag) => !known.has(flag) && !known.has(camel(flag)));
      expect({ at, unknown }).toEqual({ at, unknown: [] });
    });
  }
});

function hasChild(byPath: Map<string, unknown>, prefix: string[]): boolean {
  const start = `${prefix.join(" ")} `;
  return [...byPath.keys()].some((k) => k.startsWith(start));
}

function camel(flag: string): string {
  return flag.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
}

describe("the docs' JSON answers", () => {
  it("match the schema /openapi.json gives the route they follow", async () => {
    await using kp = await startTestDaemon(
      "tokens_file: tokens.txt\nstate_file: state.db\nserver: { addr: 127.0.0.1:0 }\n",
      TWO_KEYS,
    );
    const spec = (await (await kp.fetch("/openapi.json")).json()) as OpenApi;
    const ajv = new Ajv({ strict: false, allErrors: true });
    const shown = snippets
      .filter((s) => ["sh", "bash", ""].includes(s.lang))
      .flatMap((s) => answersShown(s).map((a) => ({ ...a, at: where(s) })));
    expect(shown.length).toBeGreaterThan(2);
    for (const answer of shown) {
      const schema = responseSchema(spec, answer.method, answer.path);
      if (!schema) continue;
      const validate = ajv.compile(schema);
      const valid = validate(answer.json);
      expect({ at: answer.at, route: `${answer.method} ${answer.path}`, errors: valid ? [] : validate.errors }).toEqual(
        {
          at: answer.at,
          route: `${answer.method} ${answer.path}`,
          errors: [],
        },
      );
    }
  });
});

type OpenApi = {
  paths: Record<
    string,
    Record<string, { responses: Record<string, { content?: Record<string, { schema: object }> }> }>
  >;
};

/** `curl … host:port/path … # {json}` (or the JSON on the next comment line) → the answer shown. */
function answersShown(s: Snippet): Array<{ method: string; path: string; json: unknown }> {
  const lines = shellLines(s.text);
  const found: Array<{ method: string; path: string; json: unknown }> = [];
  lines.forEach((line, i) => {
    const words = shellCommands(line.command).find((w) => w[0] === "curl");
    if (!words) return;
    const url = words.find((w) => /^(https?:\/\/)?(localhost|127\.0\.0\.1)?:\d+\//.test(w));
    if (!url) return;
    const comment = line.comment || (lines[i + 1]?.command === "" ? lines[i + 1]!.comment : "");
    const json = tryJson(comment);
    if (json === undefined) return;
    const explicit = words[words.indexOf("-X") + 1];
    const method =
      words.includes("-X") && explicit ? explicit : words.some((w) => w === "-d" || w === "--data") ? "POST" : "GET";
    const path = new URL(url.startsWith("http") ? url : `http://${url.startsWith(":") ? `localhost${url}` : url}`)
      .pathname;
    found.push({ method: method.toLowerCase(), path, json });
  });
  return found;
}

function tryJson(text: string): unknown {
  if (!text.startsWith("{")) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function responseSchema(spec: OpenApi, method: string, path: string): object | undefined {
  for (const [template, ops] of Object.entries(spec.paths)) {
    const pattern = new RegExp(`^${template.replace(/\{\w+\}/g, "[^/]+")}$`);
    if (!pattern.test(path)) continue;
    return ops[method]?.responses["200"]?.content?.["application/json"]?.schema;
  }
  return undefined;
}

describe("the docs' links", () => {
  for (const page of pages) {
    it(`${page.slice(REPO.length + 1)} links only to pages and headings that exist`, () => {
      const text = readFileSync(page, "utf8").replace(/```[\s\S]*?```/g, "");
      const broken: string[] = [];
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^(https?:|mailto:)/.test(target!)) continue;
        const [file, anchor] = target!.split("#") as [string, string | undefined];
        const path = file ? resolve(dirname(page), file) : page;
        if (!existsSync(path)) broken.push(`${target} (no such file)`);
        else if (anchor && path.endsWith(".md") && !anchorsOf(path).has(anchor))
          broken.push(`${target} (no such heading)`);
      }
      expect(broken).toEqual([]);
    });
  }
});

/** GitHub's heading anchors: lowercased, punctuation dropped, spaces to dashes. */
function anchorsOf(page: string): Set<string> {
  const text = readFileSync(page, "utf8").replace(/```[\s\S]*?```/g, "");
  return new Set(
    [...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) =>
      m[1]!
        .trim()
        .toLowerCase()
        .replace(/[`*_~]/g, "")
        .replace(/[^\p{L}\p{N}\- ]/gu, "")
        .replaceAll(" ", "-"),
    ),
  );
}

describe("the README", () => {
  it("stays the door: at most 250 lines, and it links every page of docs/", () => {
    const readme = readFileSync(join(REPO, "README.md"), "utf8");
    const unlinked = pages
      .map((p) => p.slice(REPO.length + 1))
      .filter((p) => p.startsWith("docs/") && !p.startsWith("docs/migrate/"))
      .filter((p) => !readme.includes(`](${p})`) && !readme.includes(`](${p}#`));
    expect({ lines: readme.split("\n").length <= 250, unlinked }).toEqual({ lines: true, unlinked: [] });
  });
});
