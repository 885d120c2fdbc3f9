import { describe, expect, it } from "bun:test";
import { ConfigError } from "../src/config/errors";
import { deriveKeyId, parseTokensFile } from "../src/config/tokens-file";

function issuesOf(text: string): string[] {
  try {
    parseTokensFile(text, "keys.txt");
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("parseTokensFile", () => {
  it("reads token, id,token and id,token,weight lines, skipping blanks and comments", () => {
    const text = [
      "# a comment",
      "",
      "  sk-plain-token-000000000001  ",
      "named, sk-named-token-00000000002",
      "   # indented comment",
      "heavy,sk-heavy-token-00000000003,2.5,group=batch",
    ].join("\r\n");
    expect(parseTokensFile(text, "keys.txt")).toEqual([
      { id: deriveKeyId("sk-plain-token-000000000001"), token: "sk-plain-token-000000000001", weight: 1 },
      { id: "named", token: "sk-named-token-00000000002", weight: 1 },
      { id: "heavy", token: "sk-heavy-token-00000000003", weight: 2.5, group: "batch" },
    ]);
  });

  it("allows a file with no keys", () => {
    expect(parseTokensFile("# empty pool for now\n\n", "keys.txt")).toEqual([]);
  });

  it("reports duplicate ids and duplicate tokens by line number, without the token", () => {
    const text = "a,sk-dup-0000000000000001\na,sk-other-000000000000002\nb,sk-dup-0000000000000001\n";
    expect(issuesOf(text)).toEqual([
      'keys.txt:2: duplicate id "a" (first on line 1) — give each key its own id',
      "keys.txt:3: same token as line 1 — remove one of the two lines",
    ]);
  });

  it("echoes no piece of a secret written in the wrong column", () => {
    const refresh = "rt-9f8e7d6c";
    const base64 = "c2stbGl2ZS0wMTIzNDU2Nzg5YWJjZGVm=";
    const text = [
      `a,sk-good-00000000000001,${refresh}`,
      `b,sk-good-00000000000002,1,${base64}`,
      "c,sk-good-00000000000003,1,colour=red",
    ].join("\n");
    expect(issuesOf(text)).toEqual([
      "keys.txt:1: weight is not a number between 0.001 and 1000 — write a decimal such as 1, 2 or 0.5",
      "keys.txt:2: this field is not understood — after the weight only group=NAME, refresh_token=VALUE, models=A|B, budget_day=USD and budget_month=USD are allowed",
      'keys.txt:3: "colour" is not understood — after the weight only group=NAME, refresh_token=VALUE, models=A|B, budget_day=USD and budget_month=USD are allowed',
    ]);
  });

  it("reports every malformed line as FILE:LINE", () => {
    const text = [
      "a,sk-good-00000000000001,x",
      "b,sk-good-00000000000002,-1",
      "c,sk-good-00000000000003,0",
      "d,sk with space",
      "e,",
      "bad id!,sk-good-00000000000004",
      "f,sk-good-00000000000005,1,color=red",
      "g,sk-good-00000000000006,1,group=",
    ].join("\n");
    expect(issuesOf(text)).toEqual([
      "keys.txt:1: weight is not a number between 0.001 and 1000 — write a decimal such as 1, 2 or 0.5",
      'keys.txt:2: weight "-1" is not a number between 0.001 and 1000 — write a decimal such as 1, 2 or 0.5',
      'keys.txt:3: weight "0" is not a number between 0.001 and 1000 — write a decimal such as 1, 2 or 0.5',
      "keys.txt:4: the token contains whitespace — a token is one word; check for a missing comma",
      "keys.txt:5: the token is empty — write token, id,token or id,token,weight",
      "keys.txt:6: the id must be 1–128 of A-Z a-z 0-9 . _ : - — fix the id before the first comma",
      'keys.txt:7: "color" is not understood — after the weight only group=NAME, refresh_token=VALUE, models=A|B, budget_day=USD and budget_month=USD are allowed',
      "keys.txt:8: group=NAME needs a name of 1–64 of A-Z a-z 0-9 . _ : -",
    ]);
  });

  it("never echoes a token in its messages", () => {
    const canary = "sk-CANARY-00000000000000000001";
    const text = [`a,${canary}`, `b,${canary}`, `${canary} extra`, `c,${canary}`, `d,${canary},${canary}`].join("\n");
    for (const issue of issuesOf(text)) expect(issue).not.toContain("CANARY");
  });
});

describe("deriveKeyId", () => {
  it("is stable, well-formed and does not contain the token", () => {
    const token = "sk-derive-me-0000000000000001";
    const id = deriveKeyId(token);
    expect(id).toBe(deriveKeyId(token));
    expect(id).toMatch(/^t[0-9a-f]{8}$/);
    expect(id).not.toContain(token.slice(-8));
    expect(deriveKeyId("sk-derive-me-0000000000000002")).not.toBe(id);
  });

  it("gives a bare token the id poolctl gives it (FNV-1a 32 of the trimmed token)", () => {
    // Read off the real poolctl: its README's demo keys, and `poolctl check` on these tokens files.
    expect(["key_alpha", "key_bravo", "key_charlie", "sk-cccccccccccc"].map(deriveKeyId)).toEqual([
      "t8ca5f15f",
      "t5347ccaf",
      "t753be07d",
      "tc3212f06",
    ]);
    expect(parseTokensFile("  sk-cccccccccccc  \n", "tokens.txt")).toEqual([
      { id: "tc3212f06", token: "sk-cccccccccccc", weight: 1 },
    ]);
  });
});
