import { describe, expect, it } from "bun:test";
import { hasShellSyntax } from "../src/config/_command-line";
import { referenceTokenInScript } from "../src/config/_shell-script";
import { ConfigError } from "../src/config/errors";
import { readConfigTree } from "../src/config/load";

/** Shell in every form a token could break out with, were it ever shell text (a token holds no whitespace). */
const HOSTILE = `a*b$(touch\${IFS}pwned)\`id\`;"'z\\\${HOME}|&>`;

/** What `script` prints under /bin/sh with the token in KEYPOOL_TOKEN, and nothing else of ours. */
function runWithToken(script: string, token: string): string {
  const run = Bun.spawnSync(["/bin/sh", "-c", script], {
    env: { PATH: process.env.PATH ?? "", KEYPOOL_TOKEN: token },
    cwd: "/",
  });
  return `${run.stdout.toString()}${run.stderr.toString()}`;
}

describe("referenceTokenInScript", () => {
  // [where {token} stands, the line as written, the line keypool runs]
  it.each([
    ["unquoted", "printf %s {token}", 'printf %s "$KEYPOOL_TOKEN"'],
    ["inside double quotes", 'printf %s "a{token}b"', 'printf %s "a${KEYPOOL_TOKEN}b"'],
    ["inside single quotes", "printf %s 'a{token}b'", `printf %s 'a'"$KEYPOOL_TOKEN"'b'`],
    ["the seed's header", "-H 'Authorization: Bearer {token}'", `-H 'Authorization: Bearer '"$KEYPOOL_TOKEN"''`],
    ["single quotes inside double", `printf %s "it's {token}"`, `printf %s "it's \${KEYPOOL_TOKEN}"`],
    ["double quotes inside single", `printf %s 'say "{token}"'`, `printf %s 'say "'"$KEYPOOL_TOKEN"'"'`],
    ["an escaped quote in double quotes", 'printf %s "\\"{token}\\""', 'printf %s "\\"${KEYPOOL_TOKEN}\\""'],
    ["$( ) in double quotes", 'printf %s "$(printf %s {token})"', 'printf %s "$(printf %s "$KEYPOOL_TOKEN")"'],
    [
      "double quotes in $( ) in double quotes",
      'printf %s "$(printf %s "x{token}")"',
      'printf %s "$(printf %s "x${KEYPOOL_TOKEN}")"',
    ],
    ["backquotes", "printf %s `printf %s {token}`", 'printf %s `printf %s "$KEYPOOL_TOKEN"`'],
    ["${…:-word} unquoted", "printf %s ${UNSET:-{token}}", 'printf %s ${UNSET:-"$KEYPOOL_TOKEN"}'],
    ["${…:-word} in double quotes", 'printf %s "${UNSET:-{token}}"', 'printf %s "${UNSET:-${KEYPOOL_TOKEN}}"'],
    ["an assignment", 'x={token}; printf %s "$x"', 'x="$KEYPOOL_TOKEN"; printf %s "$x"'],
    ["a here-document", "cat <<EOF\nv={token}\nEOF", "cat <<EOF\nv=${KEYPOOL_TOKEN}\nEOF"],
    ["a <<- here-document", 'cat <<-EOF\n\tv="{token}"\n\tEOF', 'cat <<-EOF\n\tv="${KEYPOOL_TOKEN}"\n\tEOF'],
    ["a pipe and &&", "printf %s {token} | grep -q . && echo ok", 'printf %s "$KEYPOOL_TOKEN" | grep -q . && echo ok'],
    ["after a shift in $((…))", "printf %s $((1<<2)){token}", 'printf %s $((1<<2))"$KEYPOOL_TOKEN"'],
  ])("references the token %s", (_where, line, rewritten) => {
    expect(referenceTokenInScript(line)).toBe(rewritten);
  });

  // Each runnable line must print under sh exactly what textual substitution of a harmless token would.
  it.each([
    "printf %s {token}",
    'printf %s "a{token}b"',
    "printf %s 'a{token}b'",
    `printf %s "it's {token}"`,
    `printf %s 'say "{token}"'`,
    'printf %s "\\"{token}\\""',
    'printf %s "$(printf %s "x{token}")"',
    "printf %s `printf %s {token}`",
    'printf %s "${UNSET:-{token}}"',
    "printf %s ${UNSET:-{token}}",
    "cat <<EOF\nv={token}\nEOF",
    'x={token}; printf %s "$x"',
    "printf %s {token} # {token} in a comment stays text",
    "printf %s $((1<<2)){token}",
  ])("gives %j exactly the token, whatever shell it holds", (line) => {
    const rewritten = referenceTokenInScript(line) as string;
    const expected = runWithToken(line.replaceAll("{token}", "PLACEHOLDER"), "").replaceAll("PLACEHOLDER", HOSTILE);
    expect(runWithToken(rewritten, HOSTILE)).toBe(expected);
  });

  it.each([
    ["printf 'a{token}", "has an unclosed ' quote — close it"],
    ['printf "a{token}', 'has an unclosed " quote — close it'],
    ["printf $(echo {token}", "has an unclosed $( — close it"],
    [
      "cat <<'EOF'\n{token}\nEOF",
      "{token} in here-document <<'EOF' is never expanded — unquote the end word, or use $KEYPOOL_TOKEN",
    ],
    ["cat <<EOF\n{token}", 'here-document <<EOF has no end line "EOF" — add it'],
  ])("refuses %j", (line, error) => {
    expect(referenceTokenInScript(line)).toEqual({ error });
  });
});

describe("hasShellSyntax", () => {
  it.each([
    ["./probe.sh --quiet", false],
    ["./probe.sh {token}", false],
    ["probe --flag=value 100%", false],
    ["probe 'quoted'", true],
    ["probe | grep ok", true],
    ["probe && echo ok", true],
    ["probe; echo", true],
    ["probe > out", true],
    ["probe $HOME", true],
    ["curl -w %{http_code}", true],
    ["probe *.json", true],
    ["probe\necho", true],
  ])("%j → %p", (line, shell) => {
    expect(hasShellSyntax(line)).toBe(shell);
  });
});

describe("check.cmd and check.env at load", () => {
  const load = (check: Record<string, unknown>) =>
    readConfigTree(
      { check },
      { baseDir: "/tmp", keys: { default: [{ id: "k", token: "sk-unit-0123456789abcdef", weight: 1 }] } },
    );
  const issuesOf = (check: Record<string, unknown>) => {
    try {
      load(check);
      return [];
    } catch (error) {
      if (error instanceof ConfigError) return error.issues;
      throw error;
    }
  };

  it("runs a line with shell syntax under /bin/sh, a plain line and a list as argv", () => {
    const cmdOf = (cmd: unknown) => (load({ cmd }).pools.default!.check as { cmd: string[] }).cmd;
    expect(cmdOf("curl -s -w '%{http_code}' -H 'X-Key: {token}' https://x.test")).toEqual([
      "/bin/sh",
      "-c",
      `curl -s -w '%{http_code}' -H 'X-Key: '"$KEYPOOL_TOKEN"'' https://x.test`,
    ]);
    expect(cmdOf("  ./probe.sh\t--quiet ")).toEqual(["./probe.sh", "--quiet"]);
    expect(cmdOf(["./probe.sh", "it's literal; $HOME"])).toEqual(["./probe.sh", "it's literal; $HOME"]);
  });

  it("keeps check.env for the command", () => {
    expect(
      load({ cmd: "true", env: { HTTPS_PROXY: "http://proxy:3128", REGION: 3 } }).pools.default!.check,
    ).toMatchObject({
      env: { HTTPS_PROXY: "http://proxy:3128", REGION: "3" },
    });
  });

  it("names every mistake in cmd and env without echoing a value", () => {
    const secret = "sk-secret-value-0123456789";
    expect(
      issuesOf({
        cmd: ["probe", "--key={token}"],
        env: { KEYPOOL_MASTER_KEY: secret, "1X": secret, X: `${secret}{token}` },
      }),
    ).toEqual([
      'check.cmd[1]: {token} in a list is an argument of the command, which every user can read with ps — read the token from the KEYPOOL_TOKEN environment variable in the command instead, or write cmd as one string for a shell, where {token} becomes "$KEYPOOL_TOKEN"',
      "check.env.KEYPOOL_MASTER_KEY: KEYPOOL_ names are keypool's own — the command gets the token as KEYPOOL_TOKEN; rename the variable",
      "check.env.1X: is not a variable name — use letters, digits and _, not starting with a digit",
      "check.env.X: {token} is not substituted in env — the command already gets the token as KEYPOOL_TOKEN",
    ]);
    expect(issuesOf({ cmd: "   " })).toEqual([
      'check.cmd: is empty — give the command to run, e.g. "./probe.sh --quiet"',
    ]);
    expect(issuesOf({ cmd: [] })[0]).toStartWith("check.cmd: expected one string or a non-empty list of strings");
  });
});
