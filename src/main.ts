#!/usr/bin/env bun
import { runCli } from "./cli/run";
import { isLongRunning, restartWithAllocatorSettings } from "./daemon/allocator";

const args = process.argv.slice(2);
// A command that serves for hours starts again, in place, with the allocator set for it (see allocator.ts).
if (isLongRunning(args)) restartWithAllocatorSettings(args);
// The only place that ends the process: commands return an exit code or throw.
process.exit(await runCli(args));
