import type { CheckRow } from "../health/check-keys";

/**
 * `keypool check` as a JUnit XML report, the format CI systems (GitHub Actions test reporters, GitLab,
 * Jenkins) show per test: one <testsuite> per pool, one <testcase> per key (failed keys are failures,
 * keys of a pool without a check are skipped), and a last suite holding the --min-live threshold.
 * Only ids and reasons appear: never a token.
 */
export function renderJUnit(
  rows: CheckRow[],
  counts: { live: number; minLive: number },
  timestamp = new Date(),
): string {
  const pools = [...new Set(rows.map((r) => r.pool))];
  const suites = pools.map((pool) => {
    const cases = rows.filter((r) => r.pool === pool);
    return suite(`pool ${pool}`, timestamp, cases.map(keyCase));
  });
  const enough = counts.live >= counts.minLive;
  const threshold = testcase(
    "keypool",
    `at least ${counts.minLive} live keys`,
    0,
    enough
      ? ""
      : element("failure", {
          message: `${counts.live} live, fewer than --min-live ${counts.minLive}`,
          type: "min_live",
        }),
  );
  suites.push(suite("threshold", timestamp, [{ xml: threshold, failed: !enough, skipped: false, seconds: 0 }]));

  const all = suites.reduce(
    (sum, s) => ({
      tests: sum.tests + s.tests,
      failures: sum.failures + s.failures,
      skipped: sum.skipped + s.skipped,
      seconds: sum.seconds + s.seconds,
    }),
    { tests: 0, failures: 0, skipped: 0, seconds: 0 },
  );
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites${attrs({ name: "keypool check", tests: all.tests, failures: all.failures, errors: 0, skipped: all.skipped, time: secs(all.seconds) })}>`,
    ...suites.map((s) => s.xml),
    "</testsuites>",
    "",
  ].join("\n");
}

interface Case {
  xml: string;
  failed: boolean;
  skipped: boolean;
  seconds: number;
}

function keyCase(row: CheckRow): Case {
  const seconds = row.latencyMs / 1000;
  const body =
    row.state === "failed"
      ? element("failure", { message: row.reason, type: row.status === undefined ? "failed" : `HTTP ${row.status}` })
      : row.state === "unchecked"
        ? element("skipped", { message: row.reason })
        : "";
  return {
    xml: testcase(`keypool.${row.pool}`, row.id, seconds, body),
    failed: row.state === "failed",
    skipped: row.state === "unchecked",
    seconds,
  };
}

function suite(name: string, timestamp: Date, cases: Case[]) {
  const failures = cases.filter((c) => c.failed).length;
  const skipped = cases.filter((c) => c.skipped).length;
  const seconds = cases.reduce((sum, c) => sum + c.seconds, 0);
  const xml = [
    `  <testsuite${attrs({ name, tests: cases.length, failures, errors: 0, skipped, time: secs(seconds), timestamp: timestamp.toISOString() })}>`,
    ...cases.map((c) => c.xml),
    "  </testsuite>",
  ].join("\n");
  return { xml, tests: cases.length, failures, skipped, seconds };
}

function testcase(classname: string, name: string, seconds: number, body: string): string {
  const open = `    <testcase${attrs({ classname, name, time: secs(seconds) })}`;
  return body ? `${open}>\n      ${body}\n    </testcase>` : `${open}/>`;
}

function element(name: string, attributes: Record<string, string>): string {
  return `<${name}${attrs(attributes)}/>`;
}

function attrs(attributes: Record<string, string | number>): string {
  return Object.entries(attributes)
    .map(([key, value]) => ` ${key}="${escapeXml(String(value))}"`)
    .join("");
}

function secs(seconds: number): string {
  return seconds.toFixed(3);
}

/** Escapes for an attribute value, and drops characters XML 1.0 cannot hold at all (a reason may quote a raw body). */
function escapeXml(text: string): string {
  return text
    .replace(/[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, "")
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("\n", "&#10;");
}
