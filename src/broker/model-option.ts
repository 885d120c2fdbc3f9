import { MAX_MODEL_NAME_LENGTH } from "../pool/bounds";
import { DomainError } from "../pool/errors";
import { isModelName } from "../pool/model-facts";

/**
 * A model a caller names (`GET /take?model=`, a release's `model`, the library's `take({ model })`),
 * refused unless shaped like a model name: whatever is accepted becomes a (key, model) pair in the
 * store, a label in /status and a word in the log. An empty one names no model.
 */
export function checkedModel(model: string | undefined): string | undefined {
  if (model === undefined || model === "") return undefined;
  if (isModelName(model)) return model;
  // The value is not quoted: a token pasted into the wrong field must not come back in the answer.
  throw new DomainError(
    "BAD_REQUEST",
    `model: not a model name — give it as the provider spells it (letters, digits and . _ : / @ + -, ` +
      `at most ${MAX_MODEL_NAME_LENGTH} characters), e.g. gpt-4o-mini`,
  );
}
