#!/usr/bin/env bun
import { runCli } from "./cli/run";

// The only place that ends the process: commands return an exit code or throw.
process.exit(await runCli(process.argv.slice(2)));
