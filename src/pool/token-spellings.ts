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
/**
 * Bounds what a long-running process keeps. A large pool's tokens outnumber it, so each answer may meet a
 * token anew: that costs one small object (see Spellings), which is why nothing is worked out up front.
 */
const MAX_CACHED = 1024;

export function tokenSpellings(token: string): TokenSpellings {
  let found = cache.get(token);
  if (found) return found;
  if (cache.size >= MAX_CACHED) cache.clear();
  found = new Spellings(token);
  cache.set(token, found);
  return found;
}

/**
 * One token's spellings, worked out as far as the text searched calls for. With many keys in rotation,
 * nearly every answer is searched for a token met for the first time, and the answer almost never holds
 * it: building anything per token up front (its runs, its pattern) was most of what the search cost.
 */
class Spellings implements TokenSpellings {
  /** The token's longest run of letters and digits: one `includes` turns away nearly every text. */
  private anchor: string | undefined;
  /** Every run, longest first: a text that holds the anchor must hold each of them too. */
  private runs: string[] | undefined;
  private compiled: RegExp | undefined;

  constructor(private readonly token: string) {}

  test(text: string): boolean {
    return this.mayHold(text) && this.pattern().test(text);
  }

  replace(text: string, replacement: string): string {
    return this.mayHold(text) ? text.replace(this.pattern(), () => replacement) : text;
  }

  // Letters and digits survive every encoder above, so text holding the token holds each run of them
  // as it is: a cheap first test, longest run first. It keeps short tokens from compiling too.
  private mayHold(text: string): boolean {
    this.anchor ??= longestAlphanumericRun(this.token);
    if (!text.includes(this.anchor)) return false;
    this.runs ??= alphanumericRuns(this.token);
    // A loop, not `every`: it runs on every relayed answer, and `every` would make a closure each time.
    for (const run of this.runs) if (!text.includes(run)) return false;
    return true;
  }

  // Compiled only once some text holds every run: compiling costs far more than the search.
  private pattern(): RegExp {
    this.compiled ??= new RegExp([...this.token].map(spellingsOf).join(""), "g");
    this.compiled.lastIndex = 0;
    return this.compiled;
  }
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

/** The first longest run of ASCII letters and digits in `token` ("" when it has none), found without a regular expression or an array. */
function longestAlphanumericRun(token: string): string {
  let bestStart = 0;
  let bestLength = 0;
  let start = 0;
  for (let i = 0; i <= token.length; i++) {
    if (i < token.length && isAlphanumeric(token.charCodeAt(i))) continue;
    if (i - start > bestLength) {
      bestStart = start;
      bestLength = i - start;
    }
    start = i + 1;
  }
  return token.slice(bestStart, bestStart + bestLength);
}

function isAlphanumeric(code: number): boolean {
  return (code >= 48 && code <= 57) || (code >= 65 && code <= 90) || (code >= 97 && code <= 122);
}

function alphanumericRuns(token: string): string[] {
  return (token.match(/[A-Za-z0-9]+/g) ?? []).sort((a, b) => b.length - a.length);
}
