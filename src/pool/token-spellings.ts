/**
 * Every common spelling of a token in text an upstream wrote: as is, URL-encoded (`%2F`, either
 * case), JSON-escaped (`\/`, `\u002f`, either case), or any mix of these, character by character.
 * An upstream that quotes a key back does it through one of its encoders; matching each character's
 * spellings catches all of them without knowing which encoder ran.
 */
export interface TokenSpellings {
  /** Whether `text` holds the token in any spelling. */
  test(text: string): boolean;
  /** `text` with every spelling of the token replaced by `replacement`. */
  replace(text: string, replacement: string): string;
}

const cache = new Map<string, TokenSpellings>();
/** Tokens a process sees at once are few; the bound only keeps a long-running one from collecting old ones. */
const MAX_CACHED = 1024;

export function tokenSpellings(token: string): TokenSpellings {
  let found = cache.get(token);
  if (found) return found;
  if (cache.size >= MAX_CACHED) cache.clear();
  found = build(token);
  cache.set(token, found);
  return found;
}

function build(token: string): TokenSpellings {
  // Compiled only once some text holds the anchor: with many keys in rotation, nearly every answer is
  // searched for a token met for the first time, and compiling its pattern costs far more than the search.
  let compiled: RegExp | undefined;
  const pattern = () => {
    compiled ??= new RegExp([...token].map(spellingsOf).join(""), "g");
    compiled.lastIndex = 0;
    return compiled;
  };
  // Letters and digits survive every encoder above, so text holding the token holds each run of them
  // as it is: a cheap first test, longest run first. It keeps short tokens from compiling too.
  const runs = alphanumericRuns(token);
  const mayHold = (text: string) => {
    // A loop, not `every`: it runs on every relayed answer, and `every` would make a closure each time.
    for (const run of runs) if (!text.includes(run)) return false;
    return true;
  };
  return {
    test(text) {
      return mayHold(text) && pattern().test(text);
    },
    replace(text, replacement) {
      return mayHold(text) ? text.replace(pattern(), () => replacement) : text;
    },
  };
}

function spellingsOf(char: string): string {
  const code = char.codePointAt(0)!;
  const literal = char.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&");
  if (code > 0xff) return literal;
  const hex = code.toString(16).padStart(2, "0");
  const anyCase = [...hex].map((h) => (/[a-f]/.test(h) ? `[${h}${h.toUpperCase()}]` : h)).join("");
  const forms = [literal, `%${anyCase}`, `\\\\u00${anyCase}`];
  if (char === "/") forms.push("\\\\\\/");
  return `(?:${forms.join("|")})`;
}

function alphanumericRuns(token: string): string[] {
  return (token.match(/[A-Za-z0-9]+/g) ?? []).sort((a, b) => b.length - a.length);
}
