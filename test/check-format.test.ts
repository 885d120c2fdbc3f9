import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { renderJUnit } from "../src/cli/junit";
import { type FakeUpstream, startFakeUpstream } from "./helpers/fake-upstream";
import { runKeypool } from "./helpers/run-keypool";
import { tempDir } from "./helpers/temp-dir";

const GOOD = "sk-canary-junit-good-4a7c1e9b3d";
const BAD = "sk-canary-junit-bad-8f2d6b0a5c";

let upstream: FakeUpstream;
const dir = tempDir("keypool-check-format-");

beforeAll(async () => {
  upstream = await startFakeUpstream((req) =>
    req.headers.get("authorization") === `Bearer ${GOOD}`
      ? new Response("{}")
      : new Response('<error kind="auth">"bad" & revoked</error>', { status: 401 }),
  );
  writeFileSync(dir.file("tokens.txt"), `good,${GOOD}\nbad,${BAD}\n`);
  writeFileSync(dir.file("manual.txt"), "manual,sk-canary-junit-manual-1e5f\n");
  writeFileSync(
    dir.file("keypool.yaml"),
    `pools:
  api:
    tokens_file: tokens.txt
    check:
      url: ${upstream.url}/v1/models
      headers: { Authorization: "Bearer {token}" }
  hand:
    tokens_file: manual.txt
`,
  );
});
afterAll(async () => {
  await upstream.stop();
  dir[Symbol.dispose]();
});

const check = (...args: string[]) => runKeypool(["check", "-c", dir.file("keypool.yaml"), ...args]);

describe("keypool check --format junit", () => {
  it("prints a JUnit report: a suite per pool, failed keys as failures, unchecked as skipped", async () => {
    const { stdout, code } = await check("--format", "junit");
    expect(code).toBe(0);
    expect(XMLValidator.validate(stdout)).toBe(true);
    expect(stdout).not.toContain(GOOD);
    expect(stdout).not.toContain(BAD);

    const report = new XMLParser({
      ignoreAttributes: false,
      attributeNamePrefix: "",
      isArray: (name) => ["testsuite", "testcase"].includes(name),
    }).parse(stdout);
    const suites = report.testsuites;
    expect([suites.name, suites.tests, suites.failures, suites.skipped]).toEqual(["keypool check", "4", "1", "1"]);
    expect(suites.testsuite.map((s: { name: string }) => s.name)).toEqual(["pool api", "pool hand", "threshold"]);

    const [api, hand, threshold] = suites.testsuite;
    expect(api.testcase.map((c: { name: string; classname: string }) => [c.classname, c.name])).toEqual([
      ["keypool.api", "good"],
      ["keypool.api", "bad"],
    ]);
    expect(api.testcase[0].failure).toBeUndefined();
    expect(api.testcase[1].failure).toMatchObject({ message: "HTTP 401", type: "HTTP 401" });
    expect(hand.testcase[0].skipped).toMatchObject({ message: "no check configured" });
    expect(threshold.testcase[0]).toMatchObject({ name: "at least 1 live keys" });
  });

  it("reports the --min-live threshold as a failed test and exits 1", async () => {
    const { stdout, code } = await check("--format", "junit", "--min-live", "2");
    expect(code).toBe(1);
    const report = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "" }).parse(stdout);
    const threshold = report.testsuites.testsuite.at(-1);
    expect(threshold.testcase.failure).toEqual({ message: "1 live, fewer than --min-live 2", type: "min_live" });
  });
});

describe("renderJUnit", () => {
  it("escapes markup and drops characters XML cannot hold, so any probe reason still parses", () => {
    const reason = "body said <b>\"no\" & 'never'</b>\u0001\nsecond line";
    const xml = renderJUnit([{ pool: "p", id: "k<1>", state: "failed", ok: false, latencyMs: 12, reason }], {
      live: 0,
      minLive: 0,
    });
    expect(XMLValidator.validate(xml)).toBe(true);
    // htmlEntities: the parser decodes numeric references (the newline is &#10;) only when asked.
    const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "", htmlEntities: true });
    const testcase = parser.parse(xml).testsuites.testsuite[0].testcase;
    expect(testcase.name).toBe("k<1>");
    expect(testcase.failure.message).toBe("body said <b>\"no\" & 'never'</b>\nsecond line");
  });
});

describe("keypool check --format", () => {
  it("treats --json as --format json", async () => {
    const [json, format] = await Promise.all([
      check("--json", "--pool", "hand"),
      check("--format", "json", "--pool", "hand"),
    ]);
    expect(JSON.parse(json.stdout)).toEqual(JSON.parse(format.stdout));
    expect(JSON.parse(format.stdout)).toMatchObject({ live: 0, unchecked: 1 });
  });

  it("exits 2 on an unknown format, or --json with another format", async () => {
    expect(await check("--format", "xml")).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("--format must be one of table, json, junit"),
    });
    expect(await check("--format", "junit", "--json")).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("--json means --format json"),
    });
  });
});
