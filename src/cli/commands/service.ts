import { defineCommand } from "citty";
import { resolve } from "node:path";
import { loadConfig } from "../../config/load";
import { disableCommands, enableCommands, removeUnit, unitFile, writeUnit } from "../../service/install";
import { type ServicePlatform, defaultUnitDir, serviceSpec, unitFileName } from "../../service/service-spec";
import { configArg } from "../_shared";
import { CliExit, EXIT } from "../exit";

const shared = {
  user: {
    type: "boolean",
    description: "A per-user service (systemd --user, a launchd agent) instead of a system one",
  },
  name: {
    type: "string",
    default: "keypool",
    description: "Service name (unit keypool.service, launchd label keypool)",
  },
  platform: {
    type: "string",
    valueHint: "linux|darwin",
    description: "Write a systemd unit (linux) or a launchd plist (darwin); default: this machine's",
  },
  "unit-dir": {
    type: "string",
    description: "Write the unit here instead of the service manager's directory (for packaging)",
  },
  "dry-run": { type: "boolean", description: "Print what would be done and change nothing" },
} as const;

const install = defineCommand({
  meta: {
    name: "install",
    description: "Write a systemd unit (or launchd plist) that runs `keypool serve -c FILE`, and print how to start it",
  },
  args: {
    ...configArg,
    ...shared,
    "run-as": {
      type: "string",
      description: "System units: run as this existing user instead of a transient one (DynamicUser)",
    },
  },
  run({ args }) {
    const platform = platformOf(args.platform);
    const name = serviceName(args.name);
    const configPath = resolve(args.config);
    // Validated now, not at the first boot: a ConfigError ends here with exit 2.
    const config = loadConfig(configPath);
    const spec = serviceSpec(config, { name, platform, user: Boolean(args.user), configPath, runAs: args["run-as"] });
    const unit = unitFile(spec, resolve(args["unit-dir"] ?? defaultUnitDir(platform, spec.user)));
    const notes = installNotes(spec);

    if (args["dry-run"]) {
      console.log(`# ${unit.path} (dry run: nothing written)`);
      console.log(unit.text.trimEnd());
    } else {
      try {
        writeUnit(unit, spec);
      } catch (error) {
        throw new CliExit(
          EXIT.failure,
          `cannot write ${unit.path}: ${(error as Error).message}${spec.user ? "" : " — run with sudo, or pass --user"}`,
        );
      }
      console.log(`wrote ${unit.path}`);
    }
    for (const note of notes) console.log(`note: ${note}`);
    console.log("\nthen start it and follow its log:");
    for (const command of enableCommands(spec, unit.path)) console.log(`  ${command}`);
    return EXIT.ok;
  },
});

const uninstall = defineCommand({
  meta: {
    name: "uninstall",
    description: "Stop and disable the service and remove its unit file (the state directory is kept)",
  },
  args: { ...shared },
  async run({ args }) {
    const platform = platformOf(args.platform);
    const name = serviceName(args.name);
    const user = Boolean(args.user);
    const path = resolve(args["unit-dir"] ?? defaultUnitDir(platform, user), unitFileName(platform, name));
    // With --unit-dir the unit is not the service manager's: there is nothing to stop.
    const commands = args["unit-dir"] ? { before: [], after: [] } : disableCommands(platform, user, name);
    if (args["dry-run"]) {
      for (const argv of commands.before) console.log(`would run: ${argv.join(" ")}`);
      console.log(`would remove ${path}`);
      for (const argv of commands.after) console.log(`would run: ${argv.join(" ")}`);
      return EXIT.ok;
    }
    for (const argv of commands.before) await run(argv);
    if (!removeUnit(path)) {
      throw new CliExit(
        EXIT.failure,
        `no unit at ${path} — nothing to uninstall${user ? "" : " (installed with --user? pass it here too)"}`,
      );
    }
    console.log(`removed ${path}`);
    for (const argv of commands.after) await run(argv);
    return EXIT.ok;
  },
});

export default defineCommand({
  meta: {
    name: "service",
    description: "Install keypool as a systemd or launchd service (health checks run inside it: no cron)",
  },
  subCommands: { install, uninstall },
});

function platformOf(flag: string | undefined): ServicePlatform {
  const platform = flag ?? process.platform;
  if (platform === "linux" || platform === "darwin") return platform;
  throw new CliExit(
    EXIT.usage,
    flag === undefined
      ? `keypool service supports systemd (linux) and launchd (darwin), not ${platform}; on Windows run \`keypool serve\` under a service wrapper such as NSSM or WinSW`
      : `--platform must be linux or darwin, got "${flag}"`,
  );
}

function serviceName(name: string): string {
  if (/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(name)) return name;
  throw new CliExit(EXIT.usage, `--name must be letters, digits, ".", "_" and "-" (e.g. keypool-prod), got "${name}"`);
}

function installNotes(spec: ReturnType<typeof serviceSpec>): string[] {
  const notes: string[] = [];
  if (spec.stateDir !== spec.managedStateDir) {
    notes.push(
      `state_file is in ${spec.stateDir}; the service's own state directory is ${spec.managedStateDir} — ` +
        `set state_file: ${spec.managedStateDir}/keypool.db in the config${spec.platform === "linux" ? " (the unit grants write access to the current one meanwhile)" : ""}`,
    );
  }
  const underHome = [spec.command[0]!, spec.configPath].filter((p) => p.startsWith("/root/") || p.startsWith("/home/"));
  if (spec.platform === "linux" && !spec.user && !spec.runAs && underHome.length > 0) {
    notes.push(
      `${underHome.join(" and ")} ${underHome.length > 1 ? "are" : "is"} under a home directory, which the service's transient user may not be able to read — ` +
        "install the binary to /usr/local/bin and the config to /etc/keypool, or pass --run-as USER",
    );
  }
  return notes;
}

async function run(argv: string[]): Promise<void> {
  try {
    const proc = Bun.spawn(argv, { stdout: "inherit", stderr: "inherit" });
    await proc.exited;
  } catch {
    // The service manager's CLI is missing: nothing is loaded that would need stopping.
  }
}
