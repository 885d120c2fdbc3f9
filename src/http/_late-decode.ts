import type { Static, TSchema } from "elysia";

/** The symbol TypeBox marks a schema with a decoder by (t.Numeric, t.Integer, …): it registers it globally under this name. */
const TRANSFORM = Symbol.for("TypeBox.Transform");

type Decoder = (value: unknown) => unknown;
type ObjectSchema = TSchema & { properties: Record<string, TSchema> };

export interface LateDecoding<T extends ObjectSchema> {
  /** For the route: the same checks and the same OpenAPI document, and nothing for Elysia to decode. */
  schema: T;
  /** Runs the decoders of the fields `value` has, in schema order, as Elysia would have; throws what they throw. */
  decode(value: Static<T>): Static<T>;
}

/**
 * An object schema whose fields with decoders are decoded by the route instead of by Elysia. When a
 * schema has any decoder, Elysia runs TypeBox's interpreted decode over the whole schema on every
 * request (twice for a query), whether or not a field that needs it came: on the broker's hot path
 * that was ~4 µs of CPU per take+release and the largest share of its JIT warm-up. `decode` calls
 * the very same decoders on the fields present, so values and errors are unchanged.
 */
export function decodeLate<T extends ObjectSchema>(schema: T): LateDecoding<T> {
  const decoders: Array<[key: string, decode: Decoder]> = [];
  const properties: Record<string, TSchema> = {};
  for (const [key, property] of Object.entries(schema.properties)) {
    const { [TRANSFORM]: transform, ...checked } = property as TSchema & { [TRANSFORM]?: { Decode: Decoder } };
    if (transform) decoders.push([key, transform.Decode]);
    properties[key] = checked as TSchema;
  }
  return {
    schema: { ...schema, properties },
    decode(value) {
      const fields = value as Record<string, unknown>;
      for (const [key, decode] of decoders) if (fields[key] !== undefined) fields[key] = decode(fields[key]);
      return value;
    },
  };
}
