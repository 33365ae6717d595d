"""urllib_client.py BASE_URL [KEY] [--retrieval EXPECTED.json] - talks to `sluice serve` at
BASE_URL with Python's own urllib, as a user's script would, and checks OpenAI's shapes:
/v1/models, chat and text completions whole and streamed (server-sent events ending in [DONE]),
usage counts against /metrics, seeds, stop strings, and errors as urllib raises them (HTTPError
with an OpenAI error object). Without --retrieval the server has no index: /v1/embeddings and
/rag must say so (404). With it, they are checked against EXPECTED.json (texts and their vectors
as the index's embedder makes them, a chunk's text and its vector in the index, a query and the
chunk ids `sluice search` ranks first for it). Exits 0 when every check holds, else 1 naming the
first that does not."""
import base64
import json
import struct
import sys
import urllib.error
import urllib.request

ARGS = sys.argv[1:]
EXPECTED = None
if "--retrieval" in ARGS:
    at = ARGS.index("--retrieval")
    with open(ARGS[at + 1]) as f:
        EXPECTED = json.load(f)
    del ARGS[at:at + 2]
BASE = ARGS[0].rstrip("/")
KEY = ARGS[1] if len(ARGS) > 1 else None


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def request(path, body=None, method=None, raw=None, key=KEY):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", "Bearer " + key)
    return urllib.request.urlopen(req, timeout=60)


def call(path, body=None, **kw):
    try:
        with request(path, body, **kw) as r:
            check(r.status == 200, f"{path}: status {r.status}")
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        fail(f"{path} {body!r}: HTTP {e.code}: {e.read().decode(errors='replace')}")


def error(path, body=None, want=400, **kw):
    try:
        with request(path, body, **kw) as r:
            fail(f"{path} {body!r}: {r.status}, not the error {want}")
    except urllib.error.HTTPError as e:
        check(e.code == want, f"{path} {body!r}: HTTP {e.code}, want {want}")
        err = json.loads(e.read())["error"]
        check(isinstance(err["message"], str) and err["message"], f"no message: {err}")
        check("type" in err and "param" in err and "code" in err, f"not OpenAI's shape: {err}")
        return err


def stream(path, body):
    """The events' JSON objects, checking the SSE framing and the final [DONE]."""
    events, done = [], False
    with request(path, body) as r:
        check(r.headers.get("Content-Type", "").startswith("text/event-stream"),
              f"stream content type {r.headers.get('Content-Type')}")
        for line in r:
            line = line.decode()
            if line in ("\n", "\r\n"):
                continue
            check(line.startswith("data: "), f"not an SSE data line: {line!r}")
            check(not done, "an event after [DONE]")
            payload = line[6:].strip()
            if payload == "[DONE]":
                done = True
            else:
                events.append(json.loads(payload))
    check(done, "the stream did not end with data: [DONE]")
    return events


def metric(name):
    with request("/metrics") as r:
        check(r.headers.get("Content-Type", "").startswith("text/plain"), "metrics content type")
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    fail(f"/metrics has no {name}")


# The server's model: any name is accepted for it.
models = call("/v1/models")
check(models["object"] == "list" and len(models["data"]) == 1, f"models: {models}")
name = models["data"][0]["id"]
check(models["data"][0]["object"] == "model", f"models: {models}")

messages = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is a content-addressed store?"}]
greedy = {"model": "anything", "messages": messages, "temperature": 0, "max_tokens": 24}
prompt_before = metric("sluice_serve_prompt_tokens_total")
generated_before = metric("sluice_serve_generated_tokens_total")
a = call("/v1/chat/completions", greedy)
check(a["object"] == "chat.completion" and a["id"].startswith("chatcmpl-"), f"answer: {a}")
check(a["model"] == name, f"model {a['model']} is not {name}")
choice = a["choices"][0]
check(choice["message"]["role"] == "assistant", f"choice: {choice}")
text = choice["message"]["content"]
check(isinstance(text, str), f"content: {choice}")
u = a["usage"]
check(u["prompt_tokens"] > 0 and 0 < u["completion_tokens"] <= 24, f"usage: {u}")
check(u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"], f"usage: {u}")
check(choice["finish_reason"] in ("stop", "length"), f"finish_reason: {choice}")
check(choice["finish_reason"] == "stop" or u["completion_tokens"] == 24, f"length: {a}")
check(metric("sluice_serve_prompt_tokens_total") - prompt_before == u["prompt_tokens"],
      "/metrics counts the prompt's tokens")
check(metric("sluice_serve_generated_tokens_total") - generated_before == u["completion_tokens"],
      "/metrics counts the generated tokens")

# Greedy is the same every time; a seed makes sampling the same too.
check(call("/v1/chat/completions", greedy)["choices"][0]["message"]["content"] == text,
      "greedy decoding differs between two requests")
seeded = dict(greedy, temperature=1.0, top_p=0.9, seed=1234, max_tokens=16)
s1 = call("/v1/chat/completions", seeded)["choices"][0]["message"]["content"]
s2 = call("/v1/chat/completions", seeded)["choices"][0]["message"]["content"]
check(s1 == s2, f"the same seed gave {s1!r} and {s2!r}")

# Streamed: the same text in pieces, the role first, the finish reason last.
events = stream("/v1/chat/completions", dict(greedy, stream=True,
                                             stream_options={"include_usage": True}))
check(all(e["object"] == "chat.completion.chunk" for e in events), f"chunks: {events}")
check(len({e["id"] for e in events}) == 1, "one id for the whole stream")
check(events[0]["choices"][0]["delta"].get("role") == "assistant", f"first chunk: {events[0]}")
usage = events[-1]
check(usage["choices"] == [] and usage["usage"] == u, f"usage chunk: {usage} vs {u}")
last = events[-2]["choices"][0]
check(last["finish_reason"] == choice["finish_reason"], f"last chunk: {events[-2]}")
joined = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1])
check(joined == text, f"streamed {joined!r}, whole {text!r}")
check(all(e["choices"][0]["finish_reason"] is None for e in events[:-2]), "early finish_reason")

# A stop string: the text up to it, never the string itself.
if len(text) > 8:
    stop = text[4:7]
    cut = text[: text.index(stop)]
    b = call("/v1/chat/completions", dict(greedy, stop=[stop, "no such text"]))
    check(b["choices"][0]["message"]["content"] == cut,
          f"stop {stop!r}: {b['choices'][0]['message']['content']!r}, want {cut!r}")
    check(b["choices"][0]["finish_reason"] == "stop", f"stop: {b}")
    ev = stream("/v1/chat/completions", dict(greedy, stop=stop, stream=True))
    check("".join(e["choices"][0]["delta"].get("content") or "" for e in ev) == cut,
          "a streamed answer holds back the stop string")

# Text completions.
c = call("/v1/completions", {"model": name, "prompt": "A pipeline", "max_tokens": 8,
                             "temperature": 0})
check(c["object"] == "text_completion" and isinstance(c["choices"][0]["text"], str), f"{c}")
ev = stream("/v1/completions", {"prompt": "A pipeline", "max_tokens": 8, "temperature": 0,
                                "stream": True})
check("".join(e["choices"][0]["text"] for e in ev) == c["choices"][0]["text"],
      "streamed completion differs")

# Errors, as urllib raises them.
e = error("/v1/chat/completions", raw=b'{"messages": [')
check(e["type"] == "invalid_request_error", f"{e}")
check(error("/v1/chat/completions", {"messages": messages, "temperature": "hot"})["param"]
      == "temperature", "the wrong field is named")
error("/v1/chat/completions", {"messages": "hi"})
error("/v1/chat/completions", {"messages": [{"role": "user", "content": 5}]})
error("/v1/chat/completions", {"messages": [{"role": "robot", "content": "x"}]})
error("/v1/chat/completions", {"messages": messages, "max_tokens": 0})
error("/v1/chat/completions", {"messages": messages, "stop": ["a", "b", "c", "d", "e"]})
error("/v1/chat/completions", {"model": "x"})
error("/v1/completions", {"prompt": 7})
error("/v1/chat/completions", raw=b"[1, 2]")
error("/v1/chat/completions", {"messages": [{"role": "user", "content": "x" * 4000}]})
check(error("/v1/nothing", want=404)["type"] == "not_found_error", "404's type")
error("/v1/chat/completions", want=405)
if KEY:
    e = error("/v1/models", want=401, key=None)
    check(e["type"] == "authentication_error", f"{e}")
    error("/v1/chat/completions", greedy, want=401, key="wrong")
    with request("/health", key=None) as r:
        check(r.status == 200, "/health needs no key")



def close(a, b, tol, what):
    check(len(a) == len(b), f"{what}: {len(a)} components, want {len(b)}")
    worst = max(abs(x - y) for x, y in zip(a, b))
    check(worst <= tol, f"{what}: differs by {worst} (more than {tol})")


def retrieval(exp):
    texts, want = exp["texts"], exp["vectors"]
    r = call("/v1/embeddings", {"model": "text-embedding-3-small", "input": texts})
    check(r["object"] == "list" and r["model"] == "text-embedding-3-small", f"embeddings: {r}")
    check([d["index"] for d in r["data"]] == list(range(len(texts))), f"indexes: {r['data']}")
    check(all(d["object"] == "embedding" for d in r["data"]), "object embedding")
    u = r["usage"]
    check(u["prompt_tokens"] > 0 and u["total_tokens"] == u["prompt_tokens"], f"usage: {u}")
    for i, d in enumerate(r["data"]):
        # the same floats as the embedder's, printed with 9 digits both ways
        close(d["embedding"], want[i], 1e-7, f"input {i}")
    # a chunk of the index: the vector the index holds for it
    close(r["data"][2]["embedding"], exp["row_vector"], 1e-6, "the chunk's vector in the index")
    # base64: little-endian float32s, the same values bit for bit
    b = call("/v1/embeddings", {"input": texts, "encoding_format": "base64"})
    for i, d in enumerate(b["data"]):
        raw = base64.b64decode(d["embedding"], validate=True)
        floats = struct.unpack(f"<{len(raw) // 4}f", raw)
        as_f32 = struct.unpack(f"<{len(want[i])}f", struct.pack(f"<{len(want[i])}f",
                                                                 *r["data"][i]["embedding"]))
        check(floats == as_f32, f"base64 input {i} decodes to other floats")
    one = call("/v1/embeddings", {"input": texts[0]})
    check(len(one["data"]) == 1 and one["data"][0]["embedding"] == r["data"][0]["embedding"],
          "a string input is the array's first")
    check(one["usage"]["prompt_tokens"] < u["prompt_tokens"], "usage counts each input")

    # /rag: the chunks `sluice search` ranks first, in its order, and an answer
    body = {"query": exp["query"], "k": 3, "temperature": 0, "max_tokens": 12, "seed": 1}
    a = call("/rag", body)
    check([c["id"] for c in a["context"]] == exp["ids"],
          f"/rag context {[c['id'] for c in a['context']]}, sluice search {exp['ids']}")
    check(all(c["text"] and c["link"].startswith("http") and c["score"] > 0
              for c in a["context"]), f"context: {a['context']}")
    check(a["context"][0]["score"] >= a["context"][-1]["score"], "best first")
    check(isinstance(a["answer"], str) and a["model"] == name, f"answer: {a}")
    ua = a["usage"]
    check(0 < ua["completion_tokens"] <= 12 and ua["prompt_tokens"] > 100, f"usage: {ua}")
    check(call("/rag", body)["answer"] == a["answer"], "greedy /rag answers differ")
    d = call("/rag", {"query": exp["query"]})
    check([c["id"] for c in d["context"]] == exp["ids"], "k is 3 by default")
    one = call("/rag", dict(body, k=1))
    check([c["id"] for c in one["context"]] == exp["ids"][:1], f"k=1: {one['context']}")

    # errors name the field
    for bad, param in (({"input": [1, 2, 3]}, "input"), ({"input": [[1, 2]]}, "input"),
                       ({"input": 5}, "input"), ({"input": []}, "input"),
                       ({"input": ["a", ""]}, "input"), ({}, "input"),
                       ({"input": "a", "encoding_format": "hex"}, "encoding_format"),
                       ({"input": "a", "dimensions": 3}, "dimensions"),
                       ({"input": "a", "model": 7}, "model")):
        e = error("/v1/embeddings", bad)
        check(e["param"] == param, f"{bad}: param {e['param']}, want {param}")
    e = error("/v1/embeddings", {"input": [1, 2, 3]})
    check("token" in e["message"], f"token arrays: {e}")
    for bad, param in (({"query": exp["query"], "k": 0}, "k"),
                       ({"query": exp["query"], "k": 21}, "k"),
                       ({"query": exp["query"], "k": "3"}, "k"),
                       ({"query": exp["query"], "k": 2.5}, "k"),
                       ({"query": 5}, "query"), ({"query": ""}, "query"), ({"k": 3}, "query"),
                       ({"query": "x", "temperature": 3}, "temperature"),
                       ({"query": "x", "stream": "yes"}, "stream"),
                       ({"query": "x", "filter": {"platform": "x"}}, "filter"),
                       ({"query": "x", "filter": {"author": 3}}, "filter"),
                       ({"query": "x", "filter": "Paul"}, "filter")):
        e = error("/rag", bad)
        check(e["param"] == param, f"{bad}: param {e['param']}, want {param}")
    error("/rag", raw=b'{"query": ')
    error("/rag", want=405)
    error("/v1/embeddings", want=405)


if EXPECTED:
    retrieval(EXPECTED)
else:
    for path, body in (("/v1/embeddings", {"input": "a"}), ("/rag", {"query": "a"})):
        e = error(path, body, want=404)
        check("no index" in e["message"], f"{path} without an index: {e}")

# The metrics count what happened, by route and status.
with request("/metrics") as r:
    m = r.read().decode()
for needle in ('sluice_serve_requests_total{route="/v1/chat/completions",status="200"}',
               'sluice_serve_requests_total{route="/v1/chat/completions",status="400"}',
               'sluice_serve_requests_total{route="other",status="404"}',
               'sluice_serve_request_duration_seconds_bucket{route="/v1/chat/completions",'
               'le="+Inf"}',
               'sluice_serve_requests_total{route="/rag",status="%d"}' % (400 if EXPECTED else 404),
               'sluice_serve_requests_total{route="/v1/embeddings",status="%d"}'
               % (200 if EXPECTED else 404),
               "sluice_serve_requests_running 0", "sluice_serve_requests_queued 0",
               "sluice_serve_ready 1"):
    check(needle in m, f"/metrics has no {needle}:\n{m}")
print("ok")
