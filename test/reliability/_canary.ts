/**
 * Canary tokens (scenario 15): one sits in every pool of every reliability scenario, and whatever
 * the scenario can observe afterwards — its log, the answers its clients got, /status, /metrics —
 * is searched for it. Random per run, so nothing contains one by accident.
 */

export interface Canary {
  id: string;
  token: string;
}

export function canary(name: string): Canary {
  return { id: `canary-${name}`, token: `sk-canary-${name}-${crypto.randomUUID().replaceAll("-", "")}` };
}

/**
 * The canaries (or a long enough piece of one) found in `texts`. Besides the whole token, its last
 * 24 characters and a piece from its middle are looked for: a token cut short, wrapped or
 * partly masked must not slip through. The masked form (`sk-…` and the last 4) is allowed.
 */
export function leaksOf(canaries: readonly Canary[], texts: Iterable<string>): string[] {
  const all = [...texts].join("\n");
  const found: string[] = [];
  for (const { id, token } of canaries) {
    const middle = token.slice(Math.floor(token.length / 2) - 8, Math.floor(token.length / 2) + 8);
    for (const needle of [token, token.slice(-24), middle]) {
      if (all.includes(needle)) found.push(`${id}: ${needle}`);
    }
  }
  return found;
}

/** A tokens-file line for each canary, for pools that already have keys of their own. */
export function tokensLines(canaries: readonly Canary[]): string {
  return canaries.map((c) => `${c.id},${c.token}\n`).join("");
}
