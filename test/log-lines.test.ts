import { describe, expect, it } from "bun:test";
import { createLogger } from "../src/log";

/** The lines a JSON logger writes for `log`, parsed. */
function linesOf(log: (logger: ReturnType<typeof createLogger>) => void): Array<Record<string, unknown>> {
  const lines: string[] = [];
  log(createLogger({ level: "debug", format: "json", write: (line) => lines.push(line) }));
  return lines.map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe("JSON log lines", () => {
  it("lead with time, level and msg, then the fields in their order, leaving undefined ones out", () => {
    const [line] = linesOf((l) =>
      l.info('a "quoted" message', { key: "k1", n: 2, gone: undefined, nested: { a: [1] } }),
    );
    expect(Object.keys(line!)).toEqual(["time", "level", "msg", "key", "n", "nested"]);
    expect(line).toMatchObject({ level: "info", msg: 'a "quoted" message', key: "k1", n: 2, nested: { a: [1] } });
    expect(new Date(line!.time as string).toISOString()).toBe(line!.time as string);
  });

  it("are whole objects with no fields, or only undefined ones", () => {
    const lines = linesOf((l) => {
      l.warn("none");
      l.warn("undefined only", { gone: undefined });
    });
    expect(lines.map((line) => Object.keys(line))).toEqual([
      ["time", "level", "msg"],
      ["time", "level", "msg"],
    ]);
  });

  it("let a field named like a leading one win, as a copy of the fields would", () => {
    const [line] = linesOf((l) => l.error("the message", { msg: "the field's", level: "custom", extra: 1 }));
    expect(line).toMatchObject({ msg: "the field's", level: "custom", extra: 1 });
  });

  it("take fields whose own toJSON is not an object as a copy of their properties", () => {
    const fields = Object.assign(Object.create({ toJSON: () => "flat" }) as Record<string, unknown>, { id: "k2" });
    const [line] = linesOf((l) => l.info("odd fields", fields));
    expect(line).toMatchObject({ msg: "odd fields", id: "k2" });
  });
});
