import { describe, expect, it } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";

/**
 * The layering docs/architecture.md describes, checked on the imports themselves: the domain imports
 * nothing of ours, and the use cases never reach into HTTP or the daemon.
 */
const SRC = resolve(import.meta.dir, "../src");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith(".ts") ? [path] : [];
  });
}

/** Every folder of src/ a file imports from, relative to src (e.g. "pool", "store"). */
function importedFolders(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const folders: string[] = [];
  for (const match of text.matchAll(/from\s+"(\.{1,2}\/[^"]+)"|import\(\s*"(\.{1,2}\/[^"]+)"\s*\)/g)) {
    const target = resolve(file, "..", match[1] ?? match[2]!);
    const inSrc = relative(SRC, target);
    if (!inSrc.startsWith("..")) folders.push(inSrc.split("/")[0]!);
  }
  return folders;
}

function importsOf(folder: string): Map<string, string[]> {
  const result = new Map<string, string[]>();
  for (const file of sourceFiles(join(SRC, folder))) result.set(relative(SRC, file), importedFolders(file));
  return result;
}

describe("layers", () => {
  it("src/pool, the domain, imports nothing outside itself", () => {
    const strays = [...importsOf("pool")].filter(([, folders]) => folders.some((f) => f !== "pool"));
    expect(strays).toEqual([]);
  });

  it("src/broker and src/store never import HTTP, the gateway, the daemon or the CLI", () => {
    const forbidden = new Set(["http", "gateway", "daemon", "cli"]);
    const strays = ["broker", "store"].flatMap((layer) =>
      [...importsOf(layer)].filter(([, folders]) => folders.some((f) => forbidden.has(f))),
    );
    expect(strays).toEqual([]);
  });
});
