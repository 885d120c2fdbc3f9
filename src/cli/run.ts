import { type CommandDef, defineCommand, runCommand, showUsage } from "citty";
import { ConfigError } from "../config/errors";
import { CliExit, EXIT } from "./exit";
import { VERSION } from "../version";

/** The root command is only a registry: each command loads when it is used. */
export const rootCommand = defineCommand({
  meta: { name: "keypool", version: VERSION, description: "Pools of API keys: broker, gateway and health checks." },
  subCommands: {
    serve: () => import("./commands/serve").then((m) => m.default),
    proxy: () => import("./commands/proxy").then((m) => m.default),
    demo: () => import("./commands/demo").then((m) => m.default),
    check: () => import("./commands/check").then((m) => m.default),
    status: () => import("./commands/status").then((m) => m.default),
    take: () => import("./commands/take").then((m) => m.default),
    release: () => import("./commands/release").then((m) => m.default),
    keys: () => import("./commands/keys").then((m) => m.default),
    config: () => import("./commands/config").then((m) => m.default),
    version: () => import("./commands/version").then((m) => m.default),
    service: () => import("./commands/service").then((m) => m.default),
    alerts: () => import("./commands/alerts").then((m) => m.default),
    env: () => import("./commands/env").then((m) => m.default),
    setup: () => import("./commands/setup").then((m) => m.default),
    start: () => import("./commands/start").then((m) => m.default),
    stop: () => import("./commands/stop").then((m) => m.default),
    health: () => import("./commands/health").then((m) => m.default),
    store: () => import("./commands/store").then((m) => m.default),
  },
});

/** Runs the CLI and returns the exit code; never calls process.exit itself. */
export async function runCli(rawArgs: string[]): Promise<number> {
  try {
    if (rawArgs.length === 0 || rawArgs.includes("--help") || rawArgs.includes("-h")) {
      const { command, parent } = await resolveLeaf(rawArgs);
      await showUsage(command, parent);
      return EXIT.ok;
    }
    if (rawArgs.length === 1 && (rawArgs[0] === "--version" || rawArgs[0] === "-v")) {
      console.log(VERSION);
      return EXIT.ok;
    }
    // citty drops a subcommand's return value, so the leaf command is found here and run directly.
    const { command, parent, rest } = await resolveLeaf(rawArgs);
    if (!command.run) {
      await showUsage(command, parent);
      console.error(`\n${rest[0] ? `unknown command "${rest[0]}"` : "missing command"}`);
      return EXIT.usage;
    }
    const { result } = await runCommand(command, { rawArgs: rest });
    return typeof result === "number" ? result : EXIT.ok;
  } catch (error) {
    return reportError(error, rawArgs);
  }
}

async function reportError(error: unknown, rawArgs: string[]): Promise<number> {
  if (error instanceof ConfigError) {
    console.error(error.message);
    return EXIT.usage;
  }
  if (error instanceof CliExit) {
    if (error.message) console.error(error.message);
    return error.code;
  }
  const name = (error as { name?: string })?.name;
  if (name === "CLIError") {
    const { command, parent } = await resolveLeaf(rawArgs);
    await showUsage(command, parent);
    console.error(`\n${(error as Error).message}`);
    return EXIT.usage;
  }
  console.error(`keypool: ${(error as Error)?.message ?? String(error)}`);
  return EXIT.failure;
}

/** Walks the leading words of rawArgs down the command tree: `keys list -c x` → the `list` command and `-c x`. */
// citty's commands each declare their own args; the tree holds all of them, so it is typed by the widest.
// biome-ignore lint/suspicious/noExplicitAny: see above
type AnyCommand = CommandDef<any>;

async function resolveLeaf(rawArgs: string[]): Promise<{ command: AnyCommand; parent?: AnyCommand; rest: string[] }> {
  let command: AnyCommand = rootCommand;
  let parent: AnyCommand | undefined;
  let index = 0;
  while (index < rawArgs.length) {
    const word = rawArgs[index]!;
    const subCommands = await resolve(command.subCommands);
    if (word.startsWith("-") || !subCommands?.[word]) break;
    parent = command;
    command = await resolve(subCommands[word]!);
    index++;
  }
  return { command, parent, rest: rawArgs.slice(index) };
}

async function resolve<T>(value: T | Promise<T> | (() => T | Promise<T>)): Promise<T> {
  return typeof value === "function" ? await (value as () => T | Promise<T>)() : await value;
}
