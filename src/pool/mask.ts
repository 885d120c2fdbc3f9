/**
 * The only form in which a token may appear outside a /take body or an upstream request.
 * Long tokens keep a recognisable prefix and their last four characters (`sk-…abcd`);
 * short ones reveal nothing, since four characters of an eight-character secret is half of it.
 */
export function maskToken(token: string): string {
  if (token.length < 16) return "…";
  const dash = token.indexOf("-");
  const prefix = dash > 0 && dash <= 8 ? token.slice(0, dash + 1) : token.slice(0, 3);
  return `${prefix}…${token.slice(-4)}`;
}
