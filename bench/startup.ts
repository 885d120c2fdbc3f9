#!/usr/bin/env bun
/**
 * How long a user waits: exec → `keypool version` done, and exec → first answered request of
 * `keypool serve`, for the compiled binary and for `bun src/main.ts`. Build first:
 *
 *   npm run build -- --target linux-x64 && bun run bench:startup [--runs 20]
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { median, quantile } from "./_stats";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { runs: { type: "string", default: "20" }, bin: { type: "string" } },
});
const runs = Number(values.runs);
const bin = resolve(values.bin ?? process.env.KEYPOOL_BIN ?? `dist/keypool-${process.platform}-${process.arch}`);
const MAIN = resolve(import.meta.dir, "../src/main.ts");

const dir = mkdtempSync(join(tmpdir(), "keypool-startup-"));
writeFileSync(join(dir, "tokens.txt"), "k1,sk-startup-aaaaaaaaaaaaaaaa\n");
writeFileSync(
  join(dir, "keypool.yaml"),
  "tokens_file: tokens.txt\nstate_file: state.db\nserver:\n  addr: 127.0.0.1:0\n",
);

async function timeVersion(command: string[]): Promise<number> {
  const started = performance.now();
  const proc = Bun.spawn([...command, "version"], { stdout: "ignore", stderr: "ignore" });
  if ((await proc.exited) !== 0) throw new Error(`${command.join(" ")} version failed`);
  return performance.now() - started;
}

/** exec → the listening log line names the URL → the first GET /health answers. */
async function timeFirstRequest(command: string[]): Promise<number> {
  rmSync(join(dir, "state.db"), { force: true });
  const started = performance.now();
  const proc = Bun.spawn([...command, "serve", "-c", "keypool.yaml"], { cwd: dir, stdout: "ignore", stderr: "pipe" });
  try {
    let log = "";
    for await (const chunk of proc.stderr) {
      log += new TextDecoder().decode(chunk);
      const url = log.match(/"msg":"keypool API listening","url":"([^"]+)"/)?.[1];
      if (!url) continue;
      const response = await fetch(`${url}/health`);
      if (!response.ok) throw new Error(`/health answered ${response.status}`);
      return performance.now() - started;
    }
    throw new Error(`serve exited before listening:\n${log}`);
  } finally {
    proc.kill("SIGKILL");
    await proc.exited;
  }
}

async function measure(name: string, fn: () => Promise<number>) {
  await fn(); // warm the page cache: the first exec of a 100 MB file reads it from disk
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) samples.push(await fn());
  const sorted = samples.sort((a, b) => a - b);
  console.log(
    `${name.padEnd(52)} median ${median(sorted).toFixed(1).padStart(6)} ms   p90 ${quantile(sorted, 0.9).toFixed(1).padStart(6)} ms`,
  );
}

const targets: Array<[string, string[]]> = [["source (bun src/main.ts)", [process.execPath, MAIN]]];
if (existsSync(bin)) targets.unshift([`binary (${bin.split("/").pop()})`, [bin]]);
else console.log(`no binary at ${bin}: build it with npm run build -- --target linux-x64; measuring source only`);

console.log(`${runs} runs each, bun ${Bun.version}, ${process.platform}-${process.arch}`);
try {
  for (const [label, command] of targets) {
    await measure(`${label}: version`, () => timeVersion(command));
    await measure(`${label}: serve → first request`, () => timeFirstRequest(command));
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
