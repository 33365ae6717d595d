"""urllib_client.py BASE_URL [KEY] - talks to `sluice serve` at BASE_URL with Python's own
urllib, as a user's script would, and checks OpenAI's shapes: /v1/models, chat and text
completions whole and streamed (server-sent events ending in [DONE]), usage counts against
/metrics, seeds, stop strings, and errors as urllib raises them (HTTPError with an OpenAI error
object). Exits 0 when every check holds, else 1 naming the first that does not."""
import json
import sys
import urllib.error
import urllib.request

BASE = sys.argv[1].rstrip("/")
KEY = sys.argv[2] if len(sys.argv) > 2 else None


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
    with request(path, body, **kw) as r:
        check(r.status == 200, f"{path}: status {r.status}")
        return json.loads(r.read())


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

# The metrics count what happened, by route and status.
with request("/metrics") as r:
    m = r.read().decode()
for needle in ('sluice_serve_requests_total{route="/v1/chat/completions",status="200"}',
               'sluice_serve_requests_total{route="/v1/chat/completions",status="400"}',
               'sluice_serve_requests_total{route="other",status="404"}',
               'sluice_serve_request_duration_seconds_bucket{route="/v1/chat/completions",'
               'le="+Inf"}',
               "sluice_serve_requests_running 0", "sluice_serve_requests_queued 0",
               "sluice_serve_ready 1"):
    check(needle in m, f"/metrics has no {needle}:\n{m}")
print("ok")
