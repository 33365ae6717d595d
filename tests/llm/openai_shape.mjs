// openai_shape.mjs BASE_URL OUT.json - sends one chat completion with the official `openai`
// client (pinned in tests/package.json) to tests/llm_server.py at BASE_URL (ending in /v1), with
// the parameters sluice's client sends, then writes to OUT.json the request's shape as the server
// recorded it: the header names and body keys it carried, and "required_headers", the headers
// the library itself sets (not those of node's fetch or the x-stainless-* telemetry), which
// llm_server.py --shape OUT.json then demands of every request.
import { writeFileSync } from "node:fs";
import OpenAI from "openai";

const [base, out] = process.argv.slice(2);
if (!base || !out) {
  console.error("usage: openai_shape.mjs BASE_URL OUT.json");
  process.exit(2);
}
const client = new OpenAI({ baseURL: base, apiKey: process.env.OPENAI_API_KEY, maxRetries: 0 });
const completion = await client.chat.completions.create({
  model: "test-model",
  messages: [
    { role: "system", content: "You write datasets." },
    { role: "user", content: "extract 0 about pipelines" },
  ],
  temperature: 0.7,
  seed: 42,
  max_tokens: 300,
  response_format: { type: "json_object" },
});
if (!completion.choices[0].message.content) throw new Error("no content in the answer");
const stats = await (await fetch(base.replace(/\/v1\/?$/, "") + "/stats")).json();
const last = stats.last_request;
const fetchOwn = new Set(["host", "connection", "content-length", "accept-encoding",
  "accept-language", "sec-fetch-mode"]);
const headers = Object.keys(last.headers).sort();
writeFileSync(out, JSON.stringify({
  headers,
  authorization: last.authorization,
  body_keys: last.body_keys,
  required_headers: headers.filter((h) => !fetchOwn.has(h) && !h.startsWith("x-stainless")),
}, null, 2) + "\n");
