/** The gateway benchmark's unit of load: one OpenAI-shaped chat completion, plain JSON or SSE. */
import type { Workload } from "./_load";

export type Mode = "json" | "sse";

const PATH = "/v1/chat/completions";

/** One chat completion through the server at `baseUrl`, body read to the end; fails unless it is a whole, successful answer. */
export function chatCompletion(baseUrl: string, mode: Mode): Workload {
  const url = baseUrl + PATH;
  const body = JSON.stringify({
    model: "gpt-bench",
    messages: [{ role: "user", content: "Say hello in one short sentence." }],
    stream: mode === "sse",
  });
  return {
    baseUrl,
    async send() {
      const response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer client-key-ignored" },
        body,
      });
      const text = await response.text();
      if (response.status !== 200) throw new Error(`${response.status} ${text.slice(0, 200)}`);
      const whole = mode === "sse" ? text.endsWith("data: [DONE]\n\n") : text.endsWith("}");
      if (!whole) throw new Error(`incomplete ${mode} body (${text.length} bytes): …${text.slice(-80)}`);
    },
  };
}
