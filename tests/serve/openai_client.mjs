// openai_client.mjs BASE_URL KEY - the official `openai` client (pinned in tests/package.json)
// against `sluice serve` at BASE_URL (ending in /v1): models, chat whole and streamed, a text
// completion, and errors as the library raises them (BadRequestError, AuthenticationError,
// NotFoundError). Prints "ok" and exits 0 when every check holds.
import OpenAI from "openai";

const [base, key] = process.argv.slice(2);
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
await raises(() => client.embeddings.create({ model: "x", input: "a" }), OpenAI.NotFoundError, 404);
console.log("ok");
