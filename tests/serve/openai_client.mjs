// openai_client.mjs BASE_URL KEY [EXPECTED.json] - the official `openai` client (pinned in
// tests/package.json) against `sluice serve` at BASE_URL (ending in /v1): models, chat whole and
// streamed, a text completion, and errors as the library raises them (BadRequestError,
// AuthenticationError, NotFoundError). With EXPECTED.json (urllib_client.py's --retrieval file)
// the server has an index: embeddings.create must give its vectors, as base64 (the client's
// default, which it decodes) and as floats; without, it must raise NotFoundError. Prints "ok" and
// exits 0 when every check holds.
import { readFileSync } from "node:fs";
import OpenAI from "openai";

const [base, key, expectedPath] = process.argv.slice(2);
const client = new OpenAI({ baseURL: base, apiKey: key, maxRetries: 0 });
const check = (cond, msg) => {
  if (!cond) {
    console.error("FAIL:", msg);
    process.exit(1);
  }
};

const models = await client.models.list();
check(models.data.length === 1 && models.data[0].object === "model", JSON.stringify(models.data));

const params = {
  model: "gpt-4o-mini", // any name: the server has one model
  messages: [{ role: "user", content: [{ type: "text", text: "What is a DAG?" }] }],
  temperature: 0,
  max_tokens: 20,
};
const whole = await client.chat.completions.create(params);
const text = whole.choices[0].message.content;
check(typeof text === "string", JSON.stringify(whole));
check(whole.usage.completion_tokens <= 20 && whole.usage.prompt_tokens > 0, JSON.stringify(whole));

const stream = await client.chat.completions.create({ ...params, stream: true });
let joined = "";
let finish = null;
for await (const chunk of stream) {
  joined += chunk.choices[0]?.delta?.content ?? "";
  finish = chunk.choices[0]?.finish_reason ?? finish;
}
check(joined === text, `streamed ${JSON.stringify(joined)}, whole ${JSON.stringify(text)}`);
check(finish === whole.choices[0].finish_reason, `finish ${finish}`);

const completion = await client.completions.create({ model: "x", prompt: "A step", max_tokens: 5 });
check(typeof completion.choices[0].text === "string", JSON.stringify(completion));

const raises = async (fn, cls, status) => {
  try {
    await fn();
  } catch (e) {
    check(e instanceof cls && e.status === status, `${e.constructor.name} ${e.status}: ${e}`);
    return e;
  }
  check(false, `no ${cls.name}`);
};
const e = await raises(() => client.chat.completions.create({ ...params, temperature: 9 }),
  OpenAI.BadRequestError, 400);
check(e.error?.param === "temperature", JSON.stringify(e.error));
await raises(() => client.chat.completions.create({ ...params, messages: [] }),
  OpenAI.BadRequestError, 400);
const wrong = new OpenAI({ baseURL: base, apiKey: "not-the-key", maxRetries: 0 });
await raises(() => wrong.chat.completions.create(params), OpenAI.AuthenticationError, 401);
if (expectedPath) {
  const expected = JSON.parse(readFileSync(expectedPath, "utf8"));
  const close = (got, want, what) => {
    check(got.length === want.length, `${what}: ${got.length} components, want ${want.length}`);
    const worst = Math.max(...got.map((x, i) => Math.abs(x - want[i])));
    check(worst <= 1e-7, `${what}: differs by ${worst}`);
  };
  for (const encoding_format of [undefined, "float", "base64"]) {
    const r = await client.embeddings.create({
      model: "text-embedding-3-small",
      input: expected.texts,
      ...(encoding_format ? { encoding_format } : {}),
    });
    check(r.data.length === expected.texts.length, JSON.stringify(r.usage));
    check(r.usage.prompt_tokens > 0 && r.usage.total_tokens === r.usage.prompt_tokens,
      JSON.stringify(r.usage));
    r.data.forEach((d, i) => {
      check(d.index === i, `index ${d.index}`);
      // asked for base64 explicitly, the client hands the string back undecoded
      let v = d.embedding;
      if (typeof v === "string") {
        const b = Buffer.from(v, "base64");
        v = Array.from(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)));
      }
      close(v, expected.vectors[i], `${encoding_format ?? "default"} input ${i}`);
    });
  }
  const e = await raises(() => client.embeddings.create({ model: "x", input: [[1, 2, 3]] }),
    OpenAI.BadRequestError, 400);
  check(e.error?.param === "input", JSON.stringify(e.error));
} else {
  await raises(() => client.embeddings.create({ model: "x", input: "a" }), OpenAI.NotFoundError,
    404);
}
console.log("ok");
