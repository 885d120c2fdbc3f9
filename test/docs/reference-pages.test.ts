import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "bun:test";
import { CLI_PAGE, renderCliReference, withReference } from "../../scripts/cli-docs";
import { ConfigError } from "../../src/config/errors";
import { parseConfig } from "../../src/config/load";
import { tempDir } from "../helpers/temp-dir";
import { REPO } from "./_snippets";

/**
 * The reference pages are held to the code: the CLI page is generated from the citty commands, and every key the
 * config validator accepts is documented on the configuration pages.
 */

describe("docs/cli.md", () => {
  it("is the reference the commands generate (run `bun scripts/cli-docs.ts` after changing a command)", async () => {
    const page = readFileSync(CLI_PAGE, "utf8");
    expect(page).toBe(withReference(page, await renderCliReference()));
  });
});

/** A key no section knows, so the validator lists the ones it does ("allowed here: …"). */
const PROBE = "zq_not_a_key";

/** Each section of the config, written with the probe key inside it. */
const SECTIONS: Record<string, string> = {
  "": `${PROBE}: 1\n`,
  server: `server: { ${PROBE}: 1 }\n`,
  store: `store: { ${PROBE}: 1 }\n`,
  "store.postgres": `store: { postgres: { url: "postgres://localhost/x", ${PROBE}: 1 } }\n`,
  metrics: `metrics: { ${PROBE}: 1 }\n`,
  log: `log: { ${PROBE}: 1 }\n`,
  alerts: `alerts: { ${PROBE}: 1 }\n`,
  "alerts.webhooks[]": `alerts: { webhooks: [{ url: "https://hooks.example.com/x", ${PROBE}: 1 }] }\n`,
  "check (HTTP)": `check: { url: "https://api.example.com/me", ${PROBE}: 1 }\n`,
  refresh: `check: { url: "https://api.example.com/me" }\nrefresh: { url: "https://auth.example.com/t", ${PROBE}: 1 }\n`,
  upstream: `upstream: { ${PROBE}: 1 }\n`,
  session: `session: { ${PROBE}: 1 }\n`,
  "backoff.<class>": `backoff: { rate_limit: { ${PROBE}: 1 } }\n`,
  "classify[]": `classify: [{ status: 429, class: rate_limit, ${PROBE}: 1 }]\n`,
};

function allowedKeys(yaml: string): string[] {
  using dir = tempDir();
  writeFileSync(join(dir.path, "tokens.txt"), "a,sk-doc-aaaaaaaaaaaaaaaaaaaa\n");
  try {
    parseConfig(`tokens_file: tokens.txt\n${yaml}`, { baseDir: dir.path, env: {} });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const listed = error.issues.map((i) => /allowed here: ([^)]*)\)/.exec(i)?.[1]).find(Boolean);
    if (listed) return listed.split(", ");
    throw new Error(`no list of allowed keys in: ${error.issues.join("; ")}`);
  }
  throw new Error("the probe key was accepted");
}

describe("the configuration pages", () => {
  const docs = [
    "configuration.md",
    "key-states.md",
    "sessions-and-fallback.md",
    "gateway.md",
    "observability.md",
    "several-instances.md",
    "administration.md",
  ]
    .map((page) => readFileSync(join(REPO, "docs", page), "utf8"))
    .join("\n");

  // A key is documented when a code span names it (`key`, `section.key`) or a YAML example sets it.
  const inCode = [...docs.matchAll(/`([^`\n]+)`/g)].flatMap((m) => m[1]!.split(/[^\w]+/));
  const inYaml = [...docs.matchAll(/(?:^|[{,]) *(\w+):/gm)].map((m) => m[1]!);
  const documented = new Set([...inCode, ...inYaml]);

  for (const [section, yaml] of Object.entries(SECTIONS)) {
    it(`document every key of ${section || "the top level"}`, () => {
      const undocumented = allowedKeys(yaml).filter((key) => !documented.has(key));
      expect(undocumented).toEqual([]);
    });
  }
});
