import { MAX_PRICE_PER_MTOK } from "../pool/bounds";
import { type Section, describe, isMapping, joinPath } from "./_fields";
import type { ModelPrice, PriceTable } from "./types";

const PRICE_FIELDS: Record<string, keyof ModelPrice | undefined> = {
  input_per_mtok: "inputPerMtok",
  output_per_mtok: "outputPerMtok",
  cached_input_per_mtok: "cachedInputPerMtok",
  cache_write_per_mtok: "cacheWritePerMtok",
};

const EXAMPLE = 'prices: { "gpt-4o-mini": { input_per_mtok: 0.15, output_per_mtok: 0.6 } }';

/** `prices:` at the top level — model name → USD per million input and output tokens. */
export function readPrices(s: Section): PriceTable | undefined {
  const e = s.entry("prices");
  if (!e) return undefined;
  if (!isMapping(e.value)) {
    s.issues.add(e.path, `expected a mapping of model names to prices, got ${describe(e.value)} — e.g. ${EXAMPLE}`);
    return undefined;
  }
  const table: Record<string, ModelPrice> = {};
  for (const [model, body] of Object.entries(e.value)) {
    const path = joinPath(e.path, model);
    if (!isMapping(body)) {
      s.issues.add(path, `expected { input_per_mtok, output_per_mtok }, got ${describe(body)}`);
      continue;
    }
    const price: ModelPrice = { inputPerMtok: 0, outputPerMtok: 0 };
    let valid = true;
    for (const [field, value] of Object.entries(body)) {
      const key = PRICE_FIELDS[field];
      valid &&= key !== undefined;
      if (!key)
        s.issues.add(
          joinPath(path, field),
          `unknown key (allowed here: ${Object.keys(PRICE_FIELDS).join(", ")} — USD per million tokens)`,
        );
      else if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > MAX_PRICE_PER_MTOK) {
        const expected = `a number of USD ≥ 0 and ≤ ${MAX_PRICE_PER_MTOK}`;
        s.issues.add(joinPath(path, field), `expected ${expected}, got ${describe(value)}`);
        valid = false;
      } else price[key] = value;
    }
    // An entry that prices nothing would count its model's requests as $0 against every spend cap.
    if (valid && !Object.values(price).some((usd) => usd > 0))
      s.issues.add(
        path,
        "prices nothing — give input_per_mtok and/or output_per_mtok above 0, or remove the entry (a model without one counts as unpriced, never as $0)",
      );
    table[model] = price;
  }
  return table;
}
