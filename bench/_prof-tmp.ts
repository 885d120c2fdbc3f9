import { takeAndRelease } from "./_broker-load";
import { closedLoop } from "./_load";
import { spawnServer } from "./_process";
const kind = process.argv[2] ?? "daemon";
const dir = process.argv[3] ?? "/tmp/prof/cpu2";
const srv = await spawnServer(
  kind,
  new URL("./_broker-server.ts", import.meta.url).pathname,
  [kind, "/tmp/prof/state"],
  ["--cpu-prof", `--cpu-prof-dir=${dir}`, "--cpu-prof-md"],
);
const r = await closedLoop(takeAndRelease(srv.url), { workers: 32, warmupMs: 500, durationMs: 5000 });
console.log(kind, Math.round(r.perSec));
srv.process.kill("SIGINT");
await srv.process.exited;
