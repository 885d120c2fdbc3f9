import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "bun:test";
import { DEFAULT_SCOPES } from "../../src/pool/failure-scope";
import { REPO } from "./_snippets";

/** The scope table in docs/key-states.md is the one scopeOf applies: the rule is decided once, in src/pool. */
describe("docs/key-states.md's scope table", () => {
  const page = readFileSync(join(REPO, "docs", "key-states.md"), "utf8");
  const section = page.slice(page.indexOf("### Scope: the whole key, or one of its models"));
  const rows = [...section.matchAll(/^\| `(\w+)` \| ([^|]+) \|/gm)].map((m) => [m[1]!, m[2]!.trim()] as const);

  it("lists every class with the default scope", () => {
    const documented = Object.fromEntries(rows);
    const expected = Object.fromEntries(
      Object.entries(DEFAULT_SCOPES).map(([cls, scope]) => [cls, expect.stringMatching(docWording(cls, scope))]),
    );
    expect(documented).toEqual(expected);
  });
});

function docWording(cls: string, scope: string): RegExp {
  if (cls === "client") return /^—$/;
  if (scope === "by_answer") return /^model when .* else key$/;
  return new RegExp(`^${scope}$`);
}
