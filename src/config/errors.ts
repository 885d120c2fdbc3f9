/**
 * A configuration problem the user can fix. `issues` are full sentences that name
 * the path (`pools.openai.rotation`) or file position (`tokens.txt:3`) and the fix.
 */
export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(
      issues.length === 1
        ? `config error: ${issues[0]}`
        : `config errors:\n${issues.map((i) => `  - ${i}`).join("\n")}`,
    );
    this.name = "ConfigError";
  }
}
