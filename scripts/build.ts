#!/usr/bin/env bun
/**
 * Compiles keypool into one self-contained executable per platform, in dist/:
 *
 *   npm run build                          every target, then dist/SHA256SUMS
 *   npm run build -- --target linux-x64    one target (repeat --target, or comma-separate, for several)
 *
 * The whole program is bundled from src/main.ts, so every file it imports — including assets imported
 * `with { type: "file" }` — ends up inside the binary. Version (package.json) and git commit are baked in
 * with `define`. Cross-compiling fetches the Bun runtime for each foreign target from the npm registry
 * (cached after the first time); a target that cannot be fetched is reported and the build exits 1.
 */
import { mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import packageJson from "../package.json" with { type: "json" };

const TARGETS = {
  "linux-x64": "bun-linux-x64",
  "linux-arm64": "bun-linux-arm64",
  "darwin-x64": "bun-darwin-x64",
  "darwin-arm64": "bun-darwin-arm64",
  "windows-x64": "bun-windows-x64",
} as const satisfies Record<string, Bun.Build.CompileTarget>;
type Target = keyof typeof TARGETS;

const ROOT = resolve(import.meta.dir, "..");
const ENTRY = join(ROOT, "src/main.ts");

export const binaryName = (target: Target) => `keypool-${target}${target.startsWith("windows") ? ".exe" : ""}`;

interface Built {
  target: Target;
  file: string;
  bytes: number;
  ms: number;
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      target: { type: "string", multiple: true },
      outdir: { type: "string", default: join(ROOT, "dist") },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(`usage: bun scripts/build.ts [--target ${Object.keys(TARGETS).join("|")}]... [--outdir DIR]`);
    return 0;
  }
  const targets = parseTargets(values.target);
  if (!targets) return 2;
  const outdir = resolve(values.outdir);
  mkdirSync(outdir, { recursive: true });

  const commit = gitCommit();
  console.log(`keypool ${packageJson.version} (${commit}) with bun ${Bun.version} → ${outdir}`);
  const built: Built[] = [];
  const failed: Array<{ target: Target; reason: string }> = [];
  for (const target of targets) {
    try {
      built.push(await compile(target, outdir, commit));
      const last = built.at(-1)!;
      console.log(`  ${binaryName(target).padEnd(26)} ${megabytes(last.bytes).padStart(9)}  ${last.ms} ms`);
    } catch (error) {
      failed.push({ target, reason: describeFailure(target, error) });
      console.error(`  ${binaryName(target).padEnd(26)} FAILED: ${failed.at(-1)!.reason}`);
    }
  }
  const sums = await writeChecksums(outdir);
  console.log(`  SHA256SUMS (${sums} files)`);
  if (failed.length > 0) {
    console.error(`\n${failed.length} of ${targets.length} targets failed: ${failed.map((f) => f.target).join(", ")}`);
    return 1;
  }
  return 0;
}

function parseTargets(requested: string[] | undefined): Target[] | undefined {
  if (!requested) return Object.keys(TARGETS) as Target[];
  const names = requested.flatMap((t) => t.split(",")).map((t) => t.trim().replace(/^bun-/, ""));
  const unknown = names.filter((n) => !(n in TARGETS));
  if (unknown.length > 0) {
    console.error(`unknown --target ${unknown.join(", ")}: pick from ${Object.keys(TARGETS).join(", ")}`);
    return undefined;
  }
  return [...new Set(names)] as Target[];
}

async function compile(target: Target, outdir: string, commit: string): Promise<Built> {
  const file = join(outdir, binaryName(target));
  const started = performance.now();
  const result = await Bun.build({
    entrypoints: [ENTRY],
    compile: {
      target: TARGETS[target],
      outfile: file,
      // The binary reads only the config it is given: a .env or bunfig.toml in whatever directory it
      // happens to start from must not change its behaviour (or slip secrets into its environment).
      autoloadDotenv: false,
      autoloadBunfig: false,
    },
    // Bytecode roughly thirds the start-up time (measured: `version` 66 → 22 ms); ESM because main.ts
    // uses top-level await, and ESM bytecode is allowed with compile.
    bytecode: true,
    format: "esm",
    // Names are kept: errors are told apart by `name` (citty's CLIError, EADDRINUSE handling) and stack traces read better.
    minify: { whitespace: true, syntax: true, identifiers: true, keepNames: true },
    // Embedded (zstd-compressed) so stack traces point into src/; the .map file beside it is dropped below.
    sourcemap: "linked",
    define: {
      KEYPOOL_BUILD_VERSION: JSON.stringify(packageJson.version),
      KEYPOOL_BUILD_COMMIT: JSON.stringify(commit),
    },
    throw: false,
  });
  rmSync(`${file.replace(/\.exe$/, "")}.map`, { force: true });
  if (!result.success) throw new AggregateError(result.logs, result.logs.map(String).join("\n") || "bun build failed");
  return { target, file, bytes: statSync(file).size, ms: Math.round(performance.now() - started) };
}

function describeFailure(target: Target, error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  if (target !== hostTarget() && /download|fetch|network|registry|ENOTFOUND|ECONNREFUSED|404|tarball/i.test(text)) {
    return `could not fetch the Bun ${Bun.version} runtime for ${TARGETS[target]} from the npm registry (${text.split("\n")[0]}) — check network access to registry.npmjs.org, or build this target on a machine that has it`;
  }
  return text;
}

function hostTarget(): string {
  return `${process.platform === "win32" ? "windows" : process.platform}-${process.arch}`;
}

/** `abc1234`, `abc1234-dirty` with uncommitted changes, or $KEYPOOL_COMMIT / "unknown" outside a git checkout. */
function gitCommit(): string {
  if (process.env.KEYPOOL_COMMIT) return process.env.KEYPOOL_COMMIT;
  const git = (...args: string[]) => Bun.spawnSync(["git", ...args], { cwd: ROOT, stdout: "pipe", stderr: "ignore" });
  const head = git("rev-parse", "--short=12", "HEAD");
  if (head.exitCode !== 0) return "unknown";
  const dirty = git("status", "--porcelain", "--untracked-files=no").stdout.toString().trim() !== "";
  return `${head.stdout.toString().trim()}${dirty ? "-dirty" : ""}`;
}

/**
 * SHA256SUMS covers every binary in dist/, in `sha256sum -c` format: a single-target rebuild updates
 * its own line and keeps the others, which still describe the files beside them.
 */
async function writeChecksums(outdir: string): Promise<number> {
  const names = readdirSync(outdir)
    .filter((name) => /^keypool-[a-z0-9]+-[a-z0-9]+(\.exe)?$/.test(name))
    .sort();
  const lines: string[] = [];
  for (const name of names) lines.push(`${await sha256(join(outdir, name))}  ${name}`);
  await Bun.write(join(outdir, "SHA256SUMS"), lines.length ? `${lines.join("\n")}\n` : "");
  return names.length;
}

async function sha256(path: string): Promise<string> {
  const hasher = new Bun.CryptoHasher("sha256");
  for await (const chunk of Bun.file(path).stream()) hasher.update(chunk);
  return hasher.digest("hex");
}

function megabytes(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
