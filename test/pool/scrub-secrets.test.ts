import { describe, expect, it } from "bun:test";
import { scrubSecrets } from "../../src/pool/scrub-secrets";

describe("scrubSecrets", () => {
  it.each([
    ["a bearer token", "got Authorization: Bearer abc.def-123456789", "got Authorization: Bearer [redacted]"],
    [
      "an OpenAI-style key",
      "Incorrect API key provided: sk-proj-AbC123dEf456GhI789.",
      "Incorrect API key provided: [redacted].",
    ],
    ["an Anthropic key", "bad key sk-ant-api03-xyzXYZ0123456789", "bad key [redacted]"],
    [
      "a key= query parameter",
      "GET /v1/models?alt=json&key=AIzaSyA-1234567890abcdefghijk failed",
      "GET /v1/models?alt=json&key=[redacted] failed",
    ],
    [
      "a JSON credential field",
      '{"api_key": "hunter2hunter2", "model": "m"}',
      '{"api_key": "[redacted]", "model": "m"}',
    ],
    [
      "a long hex run",
      "signature 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 mismatch",
      "signature [redacted] mismatch",
    ],
    ["a long base64 run", "blob dGhpcyBpcyBhIHNlY3JldCB0b2tlbiB2YWx1ZTEyMw== end", "blob [redacted] end"],
    [
      "a JWT",
      "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
      "token [redacted]",
    ],
  ])("takes out %s", (_, text, scrubbed) => {
    expect(scrubSecrets(text)).toBe(scrubbed);
  });

  it("takes out known secrets verbatim, whatever they look like", () => {
    expect(scrubSecrets("your key plainword-secret is wrong", ["plainword-secret"])).toBe(
      "your key [redacted] is wrong",
    );
  });

  it("leaves ordinary error text alone", () => {
    const text =
      '{"error":{"message":"Rate limit reached for requests per minute (limit 3500). Please retry after 20s.","type":"requests","code":"rate_limit_exceeded"}}';
    expect(scrubSecrets(text)).toBe(text);
  });
});
