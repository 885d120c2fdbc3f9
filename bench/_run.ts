/** One run of a benchmark: its command line, and the temp dir and server processes it must leave behind clean. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type ServerProcess, spawnServer, stopServer } from "./_process";

export interface BenchArgsSpec<Only extends string> {
  /** The script as the usage line names it, e.g. "bench/broker.ts". */
  script: string;
  /** The parts --only= can pick. */
  only: readonly Only[];
  /** Boolean flags besides --quick. */
  flags?: readonly string[];
}

export interface BenchArgs<Only extends string> {
  quick: boolean;
  only?: Only;
  /** --cpu-prof-dir: where the measured server writes its CPU profile. */
  profileDir?: string;
  /** Which of the spec's extra flags were given. */
  flags: ReadonlySet<string>;
}

/**
 * `[--quick] [--only=PART] [extra flags] [--cpu-prof-dir=DIR]`; anything else prints the usage line
 * and exits with status 2.
 */
export function parseBenchArgs<Only extends string>(argv: string[], spec: BenchArgsSpec<Only>): BenchArgs<Only> {
  const flags = spec.flags ?? [];
  const usage = `usage: bun ${spec.script} [--quick] [--only=${spec.only.join("|")}]${flags.map((f) => ` [--${f}]`).join("")} [--cpu-prof-dir=DIR]`;
  const values = parse(argv, flags);
  const only = values?.only;
  if (!values || (typeof only === "string" && !(spec.only as readonly string[]).includes(only))) {
    console.error(`unknown arguments: ${argv.join(" ")}\n${usage}`);
    process.exit(2);
  }
  const profileDir = values["cpu-prof-dir"];
  return {
    quick: values.quick === true,
    only: only as Only | undefined,
    profileDir: typeof profileDir === "string" ? profileDir : undefined,
    flags: new Set(flags.filter((f) => values[f] === true)),
  };
}

function parse(argv: string[], flags: readonly string[]): Record<string, string | boolean | undefined> | undefined {
  try {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        quick: { type: "boolean" },
        only: { type: "string" },
        "cpu-prof-dir": { type: "string" },
        ...Object.fromEntries(flags.map((f) => [f, { type: "boolean" as const }])),
      },
    });
    return values as Record<string, string | boolean | undefined>;
  } catch {
    return undefined;
  }
}

/**
 * Owns the run's temp dir and the server processes it starts. Disposing it (or Ctrl-C, or SIGTERM)
 * kills whatever is still running and removes the dir, so a crash leaves nothing behind.
 */
export class BenchRun implements Disposable {
  readonly tempRoot: string;
  readonly #servers = new Set<ServerProcess>();

  constructor(tempPrefix: string) {
    this.tempRoot = mkdtempSync(join(tmpdir(), tempPrefix));
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      process.on(signal, () => {
        console.error(`\n${signal}: stopping servers and removing ${this.tempRoot}`);
        this[Symbol.dispose]();
        process.exit(130);
      });
    }
  }

  /** Spawns a server (see `spawnServer`) that the run will kill if it is not stopped first. */
  async spawn(name: string, script: string, args: string[], bunArgs: string[] = []): Promise<ServerProcess> {
    const server = await spawnServer(name, script, args, bunArgs);
    this.#servers.add(server);
    return server;
  }

  /** Takes on a server started some other way (a peer's binary), so a crash or Ctrl-C kills it too. */
  adopt(server: ServerProcess): ServerProcess {
    this.#servers.add(server);
    return server;
  }

  /** Stops a server gracefully (see `stopServer`). */
  async stop(server: ServerProcess): Promise<void> {
    await stopServer(server);
    this.#servers.delete(server);
  }

  [Symbol.dispose](): void {
    for (const server of this.#servers) server.process.kill("SIGKILL");
    this.#servers.clear();
    rmSync(this.tempRoot, { recursive: true, force: true });
  }
}
