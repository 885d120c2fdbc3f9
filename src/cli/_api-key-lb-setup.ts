import { existsSync } from "node:fs";
import { join } from "node:path";
import { API_KEY_LB_SERVICE, apiKeyLbConfigPath, configFromApiKeyLb } from "../config/api-key-lb";
import { maskTarget } from "../gateway/health-report";
import { unitFile, writeUnit } from "../service/install";
import { defaultUnitDir, selfCommand, serviceSpec, unitFileName } from "../service/service-spec";
import {
  type ApiKeyLbFlags,
  mergeApiKeyLbConfig,
  planClientPatches,
  readExistingConfig,
  writeApiKeyLbConfig,
} from "../setup/api-key-lb-setup";
import { applyChange, backupStamp, labelUnder } from "../setup/client-files";
import { platformHere, runAll, serviceCommands } from "./_api-key-lb";
import { CliExit, EXIT } from "./exit";

/**
 * api-key-lb's setup: save ~/.config/api-key-lb/config.json, point Hermes and OpenCode at the gateway
 * (diff first, then the file with a backup), install and start the per-user service. Keys are never
 * printed: the config line says how many there are.
 */
export async function setupApiKeyLb(flags: ApiKeyLbFlags, options: { home: string; dryRun: boolean }): Promise<number> {
  const { home, dryRun } = options;
  const label = labelUnder(home, "~");
  const configPath = apiKeyLbConfigPath(home);
  let existing: Record<string, unknown>;
  try {
    existing = readExistingConfig(configPath);
  } catch (error) {
    throw new CliExit(EXIT.usage, `keypool setup: ${(error as Error).message}`);
  }
  const merged = mergeApiKeyLbConfig(existing, flags);
  if ("problems" in merged) throw new CliExit(EXIT.usage, merged.problems.map((p) => `keypool setup: ${p}`).join("\n"));

  const keys = `${merged.keyCount} key${merged.keyCount === 1 ? "" : "s"}`;
  const summary = `${keys}, target ${maskTarget(merged.target)}, port ${merged.port}`;
  if (!dryRun) writeApiKeyLbConfig(configPath, merged.file);
  console.log(`${dryRun ? "would save" : "saved"} ${label(configPath)} (${summary})`);

  const stamp = backupStamp(new Date());
  for (const plan of planClientPatches(home, merged.target, merged.port, label)) {
    if (plan.kind === "skip") {
      console.log(`${label(plan.path)}: ${plan.why}`);
      continue;
    }
    process.stdout.write(plan.change.diff);
    if (!dryRun) console.log(`wrote ${label(plan.change.path)} (backup: ${label(applyChange(plan.change, stamp))})`);
  }

  await installService(home, configPath, dryRun, label);
  if (dryRun) console.log("dry run: nothing written");
  else console.log("setup complete — keypool status shows the keys; keypool stop stops it");
  return EXIT.ok;
}

type Label = (path: string) => string;

/**
 * The per-user service runs `keypool proxy -c <config.json>`, as api-key-lb's LaunchAgent ran its proxy
 * on the same file; it is enabled and started, and a service manager that refuses is a note, not a failure.
 */
async function installService(home: string, configPath: string, dryRun: boolean, label: Label): Promise<void> {
  const platform = platformHere();
  if (!platform) {
    console.log(`no service installed: keypool installs one on Linux and macOS, not ${process.platform}`);
    return;
  }
  const unitDir = defaultUnitDir(platform, true, home);
  if (dryRun) {
    console.log(`would write ${label(join(unitDir, unitFileName(platform, API_KEY_LB_SERVICE)))} and start it`);
    return;
  }
  // Built as the service will build it (its environment has none of this shell's variables), which also validates it.
  const config = configFromApiKeyLb({ path: configPath, env: { HOME: home }, home });
  const options = { name: API_KEY_LB_SERVICE, platform, user: true, configPath, home };
  const spec = { ...serviceSpec(config, options), command: [...selfCommand(), "proxy", "-c", configPath] };
  const unit = unitFile(spec, unitDir);
  writeUnit(unit, spec);
  console.log(`wrote ${label(unit.path)}`);
  const oldAgent = join(home, "Library", "LaunchAgents", "com.api-key-lb.plist");
  if (platform === "darwin" && existsSync(oldAgent)) {
    // Both would bind the same port at login; which one wins would be luck.
    console.log(`note: api-key-lb's own agent is still installed: launchctl unload ${oldAgent} && rm ${oldAgent}`);
  }
  const commands = serviceCommands(platform, unit.path).install;
  // launchd's bootout fails when the agent was not loaded yet: that is the first setup.
  const result = await runAll(commands, platform === "darwin" ? [0] : []);
  if (result.ok) {
    console.log(`started ${API_KEY_LB_SERVICE} (${commands.map((c) => c.join(" ")).join(" && ")})`);
    return;
  }
  console.log(`note: could not start the service: ${result.command}: ${result.why}`);
  console.log(`      run it yourself: ${commands.map((c) => c.join(" ")).join(" && ")} — or run keypool start`);
}
