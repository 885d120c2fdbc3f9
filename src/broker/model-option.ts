import { DomainError } from "../pool/errors";
import { isModelName } from "../pool/model-facts";

/** Never quotes what was sent: a token in the wrong field would come straight back. */
const NOT_A_MODEL =
  "model: not a model name — give the name the provider uses (letters, digits and . _ : / @ + -, " +
  "starting with a letter or digit), e.g. gpt-4o-mini";

/**
 * A model a caller names (`GET /take?model=`, a release's `model`, the library's `take({ model })`),
 * refused unless shaped like a model name: whatever is accepted becomes a (key, model) pair in the
 * store, an entry in /status, a metric label and a word in the log.
 */
export function checkedModel(model: string | undefined): string | undefined {
  if (model === undefined || isModelName(model)) return model;
  throw new DomainError("BAD_REQUEST", NOT_A_MODEL);
}
