import { describe, expect, it } from "bun:test";
import { ConfigError } from "../src/config/errors";
import { parseConfig } from "../src/config/load";

const parse = (yaml: string) => parseConfig(yaml, { baseDir: import.meta.dir, env: {} });
const BASE = "tokens_file: fixtures/config/tokens.txt\nstate_file: ':memory:'\n";

describe("log config", () => {
  it("reads level and format", () => {
    expect(parse(`${BASE}log:\n  level: debug\n  format: text\n`).log).toEqual({ level: "debug", format: "text" });
  });

  it("leaves unset fields to the logger's defaults", () => {
    expect([parse(BASE).log, parse(`${BASE}log:\n  level: warn\n`).log]).toEqual([undefined, { level: "warn" }]);
  });

  it("names the field and the choices for a wrong value", () => {
    const error = (() => {
      try {
        parse(`${BASE}log:\n  level: loud\n  fromat: json\n`);
      } catch (e) {
        return e;
      }
    })() as ConfigError;
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.issues.join("\n")).toContain('log.level: "loud" is not one of debug, info, warn, error');
    expect(error.issues.join("\n")).toContain("log.fromat");
  });
});
