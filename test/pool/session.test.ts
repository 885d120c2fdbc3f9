import { describe, expect, it } from "bun:test";
import { FINGERPRINT_PROMPT_CHARS, sessionIdOf } from "../../src/pool/session";

const PROMPT = "You are a careful assistant for the billing team.";

describe("sessionIdOf", () => {
  it.each([
    ["session_id", { session_id: "s-1" }],
    ["conversation_id", { conversation_id: "s-1" }],
    ["thread_id", { thread_id: "s-1" }],
    ["metadata.session_id", { metadata: { session_id: "s-1" } }],
    ["metadata.user_id", { metadata: { user_id: "s-1" } }],
    ["user", { user: "s-1" }],
    ["sessionId", { sessionId: "s-1" }],
    ["conversationId", { conversationId: "s-1" }],
    [
      "messages[].metadata.session_id",
      {
        messages: [
          { role: "user", content: "hi" },
          { role: "user", metadata: { session_id: "s-1" } },
        ],
      },
    ],
    ["messages[].custom_fields.session_id", { messages: [{ role: "user", custom_fields: { session_id: "s-1" } }] }],
  ])("reads the body's %s", (_, body) => {
    expect(sessionIdOf({ body: { model: "gpt-4o", ...body } })).toEqual({ id: "s-1", source: "body" });
  });

  it("prefers the header to the body, and the body's fields in their documented order", () => {
    const body = { user: "u", thread_id: "t", metadata: { session_id: "m" }, conversation_id: "c" };
    expect(sessionIdOf({ header: "h", body })).toEqual({ id: "h", source: "header" });
    expect(sessionIdOf({ header: "  ", body })).toEqual({ id: "c", source: "body" });
    expect(sessionIdOf({ body: { user: "u", metadata: { user_id: "mu" } } })?.id).toBe("mu");
  });

  it("reads explicit session ids before per-message ones, and those before user-level ids", () => {
    const messages = [{ role: "user", metadata: { session_id: "msg" } }];
    expect(sessionIdOf({ body: { sessionId: "camel", conversation_id: "c", messages } })?.id).toBe("camel");
    expect(sessionIdOf({ body: { conversationId: "conv", thread_id: "t" } })?.id).toBe("conv");
    expect(sessionIdOf({ body: { user: "u", metadata: { user_id: "mu" }, messages } })?.id).toBe("msg");
  });

  it("takes a numeric id, and ignores empty strings, objects and lists", () => {
    expect(sessionIdOf({ body: { user: 42 } })?.id).toBe("42");
    expect(
      sessionIdOf({ body: { session_id: "", conversation_id: {}, thread_id: ["x"] }, fingerprint: false }),
    ).toBeUndefined();
  });

  it("replaces an overlong id by a fixed-length hash, the same for the same id", () => {
    const long = "x".repeat(5000);
    const a = sessionIdOf({ header: long })!.id;
    expect([a.startsWith("sha256:"), a.length, sessionIdOf({ body: { user: long } })!.id]).toEqual([true, 71, a]);
  });

  it("fingerprints an OpenAI request by model and system message", () => {
    const chat = (content: unknown, model = "gpt-4o") => ({
      model,
      messages: [
        { role: "system", content },
        { role: "user", content: "hi" },
      ],
    });
    const a = sessionIdOf({ body: chat(PROMPT) });
    expect(a).toEqual({ id: expect.stringMatching(/^fp:gpt-4o:[0-9a-f]{32}$/), source: "fingerprint" });
    // Content as text parts is the same prompt; another model or prompt is another session.
    expect(sessionIdOf({ body: chat([{ type: "text", text: PROMPT }]) })).toEqual(a);
    expect(sessionIdOf({ body: chat(PROMPT, "gpt-4o-mini") })?.id).not.toBe(a!.id);
    expect(sessionIdOf({ body: chat(`${PROMPT} Be brief.`) })?.id).not.toBe(a!.id);
    expect(sessionIdOf({ body: { model: "o3", messages: [{ role: "developer", content: PROMPT }] } })?.source).toBe(
      "fingerprint",
    );
    // A system message after a user preamble is still the session's prompt.
    const late = {
      model: "gpt-4o",
      messages: [
        { role: "user", content: "context" },
        { role: "system", content: PROMPT },
      ],
    };
    expect(sessionIdOf({ body: late })).toEqual(a);
  });

  it("fingerprints an Anthropic request by its top-level system, as a string or as blocks", () => {
    const messages = [{ role: "user", content: "hi" }];
    const asString = sessionIdOf({ body: { model: "claude-x", system: PROMPT, messages } });
    const asBlocks = sessionIdOf({
      body: {
        model: "claude-x",
        system: [{ type: "text", text: PROMPT, cache_control: { type: "ephemeral" } }],
        messages,
      },
    });
    expect(asString?.source).toBe("fingerprint");
    expect(asBlocks).toEqual(asString);
  });

  it("reads only the first 500 characters of the system prompt", () => {
    const head = "p".repeat(FINGERPRINT_PROMPT_CHARS);
    const fp = (system: string) => sessionIdOf({ body: { model: "m", system } })?.id;
    expect(fp(`${head}one ending`)).toBe(fp(`${head}another ending`)!);
    expect(fp(`q${head.slice(1)}`)).not.toBe(fp(head)!);
  });

  it("has no fingerprint without a system prompt, or when fingerprints are off", () => {
    expect(sessionIdOf({ body: { model: "gpt-4o", messages: [{ role: "user", content: "hi" }] } })).toBeUndefined();
    expect(sessionIdOf({ body: { model: "m", system: PROMPT }, fingerprint: false })).toBeUndefined();
    expect(sessionIdOf({ body: undefined })).toBeUndefined();
    expect(sessionIdOf({ body: ["not", "an", "object"] })).toBeUndefined();
  });
});
