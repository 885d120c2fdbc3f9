import { describe, expect, it } from "bun:test";
import { cpSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseConfig } from "../src/config/load";
import { clientEnv, renderEnv } from "../src/setup/client-env";
import { runKeypool } from "./helpers/run-keypool";
import { tempDir } from "./helpers/temp-dir";

const FIXTURES = resolve(import.meta.dir, "fixtures/client-setup");

/** A copy of the fixture home and project, so no test can touch the originals. */
function fixtureDirs() {
  const dir = tempDir("keypool-setup-");
  cpSync(FIXTURES, dir.path, { recursive: true });
  const home = join(dir.path, "home");
  const project = join(dir.path, "project");
  return { dir, home, project, config: join(project, "keypool.yaml") };
}

/** Every file under `root` with its bytes, for before/after comparisons. */
function snapshot(root: string): Record<string, string> {
  const files = readdirSync(root, { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
  return Object.fromEntries(
    files.map((e) => [join(e.parentPath, e.name), readFileSync(join(e.parentPath, e.name)).toString("base64")]),
  );
}

describe("keypool env", () => {
  const cases = [
    {
      shell: "bash",
      lines: [
        "export OPENAI_BASE_URL='http://127.0.0.1:8080/v1'",
        "export OPENAI_API_KEY='keypool'",
        "export ANTHROPIC_BASE_URL='http://127.0.0.1:8081'",
        "export ANTHROPIC_API_KEY='keypool'",
      ],
    },
    {
      shell: "fish",
      lines: [
        "set -gx OPENAI_BASE_URL 'http://127.0.0.1:8080/v1'",
        "set -gx OPENAI_API_KEY 'keypool'",
        "set -gx ANTHROPIC_BASE_URL 'http://127.0.0.1:8081'",
        "set -gx ANTHROPIC_API_KEY 'keypool'",
      ],
    },
    {
      shell: "powershell",
      lines: [
        "$env:OPENAI_BASE_URL = 'http://127.0.0.1:8080/v1'",
        "$env:OPENAI_API_KEY = 'keypool'",
        "$env:ANTHROPIC_BASE_URL = 'http://127.0.0.1:8081'",
        "$env:ANTHROPIC_API_KEY = 'keypool'",
      ],
    },
  ];

  for (const { shell, lines } of cases) {
    it(`prints the gateway variables in ${shell} syntax`, async () => {
      const { dir, config } = fixtureDirs();
      using _ = dir;
      const run = await runKeypool(["env", "-c", config, "--shell", shell]);
      expect(run).toEqual({
        code: 0,
        stderr: "",
        stdout: [
          `# keypool gateway (${config})`,
          `# the gateway injects a real key; "keypool" only satisfies clients that insist on one`,
          ...lines,
          "",
        ].join("\n"),
      });
    });
  }

  it("rejects an unknown shell with exit 2", async () => {
    const { dir, config } = fixtureDirs();
    using _ = dir;
    const run = await runKeypool(["env", "-c", config, "--shell", "tcsh"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--shell "tcsh" is not one of bash, fish, powershell');
  });
});

describe("clientEnv", () => {
  const envOf = (yaml: string) => clientEnv(parseConfig(yaml, { baseDir: "/", env: {} }));

  it("adds the pool's prefix when pools share a listener, and no /v1 when base_url has it already", () => {
    const env = envOf(`
tokens_file: /dev/null
pools:
  oai: { upstream: { enabled: true, base_url: https://api.openai.com/v1, listen: ":9000" } }
  ant: { upstream: { enabled: true, base_url: https://api.anthropic.com, listen: ":9000", path_prefix: /claude, client_keys: [ck-1] } }
`);
    expect(renderEnv(env, "bash")).toBe(
      [
        "# keypool gateway",
        '# upstream.client_keys is set (pool ant): replace "keypool" with one of your client keys',
        "export OPENAI_BASE_URL='http://127.0.0.1:9000/oai'",
        "export OPENAI_API_KEY='keypool'",
        "export ANTHROPIC_BASE_URL='http://127.0.0.1:9000/claude'",
        "export ANTHROPIC_API_KEY='keypool'",
        "",
      ].join("\n"),
    );
  });

  it("says what to configure when no pool has a gateway", () => {
    expect(() => envOf("tokens_file: /dev/null\n")).toThrow("no pool has a gateway");
  });
});

describe("keypool setup", () => {
  it("prints the diff for each known file it finds and changes nothing on disk without --write", async () => {
    const { dir, home, project, config } = fixtureDirs();
    using _ = dir;
    const before = snapshot(dir.path);
    const run = await runKeypool(["setup", "-c", config, "--home", home, "--cwd", project]);
    expect(run.code).toBe(0);
    expect(snapshot(dir.path)).toEqual(before);
    expect(run.stdout).toStartWith(
      [
        "--- ./.env",
        "+++ ./.env",
        "@@ -1,4 +1,7 @@",
        " # app settings",
        " DATABASE_URL=postgres://localhost/app",
        " OPENAI_API_KEY=sk-real-key-kept",
        "-export OPENAI_BASE_URL=https://api.openai.com/v1",
        "+export OPENAI_BASE_URL=http://127.0.0.1:8080/v1",
        `+# keypool gateway (${config}) — added by keypool setup`,
        "+ANTHROPIC_BASE_URL=http://127.0.0.1:8081",
        "+ANTHROPIC_API_KEY=keypool",
        "--- ~/.bashrc",
        "+++ ~/.bashrc",
      ].join("\n"),
    );
    expect(run.stdout).toContain("+++ ~/.config/fish/config.fish");
    expect(run.stdout).not.toContain(".zshrc"); // not there, so not a client this user has
    expect(run.stdout).toEndWith("dry run: nothing written — run again with --write to apply\n");
  });

  it("writes with --write, keeps a byte-for-byte backup, and has nothing left to do on a second run", async () => {
    const { dir, home, project, config } = fixtureDirs();
    using _ = dir;
    const original = snapshot(dir.path);
    const args = ["setup", "-c", config, "--home", home, "--cwd", project];
    const run = await runKeypool([...args, "--write"]);
    expect(run.code).toBe(0);

    expect(readFileSync(join(project, ".env"), "utf8")).toBe(
      [
        "# app settings",
        "DATABASE_URL=postgres://localhost/app",
        "OPENAI_API_KEY=sk-real-key-kept", // a real key is the user's business
        "export OPENAI_BASE_URL=http://127.0.0.1:8080/v1",
        `# keypool gateway (${config}) — added by keypool setup`,
        "ANTHROPIC_BASE_URL=http://127.0.0.1:8081",
        "ANTHROPIC_API_KEY=keypool",
        "",
      ].join("\n"),
    );
    expect(readFileSync(join(home, ".bashrc"), "utf8")).toBe(
      [
        "# ~/.bashrc",
        "alias ll='ls -l'",
        "",
        "# >>> keypool >>>",
        `# keypool gateway (${config})`,
        `# the gateway injects a real key; "keypool" only satisfies clients that insist on one`,
        "# written by keypool setup; delete this block to undo",
        "export OPENAI_BASE_URL='http://127.0.0.1:8080/v1'",
        'export OPENAI_API_KEY="${OPENAI_API_KEY:-keypool}"',
        "export ANTHROPIC_BASE_URL='http://127.0.0.1:8081'",
        'export ANTHROPIC_API_KEY="${ANTHROPIC_API_KEY:-keypool}"',
        "# <<< keypool <<<",
        "",
      ].join("\n"),
    );
    expect(readFileSync(join(home, ".config/fish/config.fish"), "utf8")).toContain(
      "set -q OPENAI_API_KEY; or set -gx OPENAI_API_KEY 'keypool'\n",
    );

    // Each changed file has a backup holding exactly what was there before.
    for (const file of [join(project, ".env"), join(home, ".bashrc"), join(home, ".config/fish/config.fish")]) {
      const parent = join(file, "..");
      const backups = readdirSync(parent).filter((name) => name.startsWith(`${file.split("/").pop()}.keypool-backup-`));
      expect(backups).toHaveLength(1);
      expect(readFileSync(join(parent, backups[0]!)).toString("base64")).toBe(original[file]!);
    }

    const again = await runKeypool([...args, "--write"]);
    expect(again.stdout).toBe(
      `${["./.env", "~/.bashrc", "~/.config/fish/config.fish"]
        .map((f) => `${f}: already points at the gateway`)
        .join("\n")}\n`,
    );
  });

  it("replaces its own block instead of adding a second one", async () => {
    const { dir, home, project, config } = fixtureDirs();
    using _ = dir;
    writeFileSync(
      join(home, ".zshrc"),
      "# >>> keypool >>>\nexport OPENAI_BASE_URL='http://old:1/v1'\n# <<< keypool <<<\nbindkey -e\n",
    );
    const run = await runKeypool(["setup", "-c", config, "--home", home, "--cwd", project, "--write"]);
    expect(run.code).toBe(0);
    const zshrc = readFileSync(join(home, ".zshrc"), "utf8");
    expect(zshrc.match(/>>> keypool >>>/g)).toHaveLength(1);
    expect(zshrc).not.toContain("http://old:1");
    expect(zshrc).toEndWith("# <<< keypool <<<\nbindkey -e\n");
  });

  it("refuses --write together with --dry-run", async () => {
    const { dir, home, project, config } = fixtureDirs();
    using _ = dir;
    const run = await runKeypool(["setup", "-c", config, "--home", home, "--cwd", project, "--write", "--dry-run"]);
    expect(run.code).toBe(2);
  });
});
