/**
 * Splits a command line into argv the way a reader expects, without a shell: whitespace separates
 * words, '…' and "…" group them (no escapes inside, no variables, no globbing).
 * Returns an error message for an unclosed quote.
 */
export function splitCommandLine(line: string): string[] | { error: string } {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let quote: string | undefined;
  for (const ch of line) {
    if (quote) {
      if (ch === quote) quote = undefined;
      else word += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (quote) return { error: `unclosed ${quote} quote — close it, or give cmd as a list of strings` };
  if (inWord) words.push(word);
  return words;
}
