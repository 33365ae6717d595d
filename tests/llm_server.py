#!/usr/bin/python3
"""A local OpenAI-compatible chat-completions server for the tests and the benchmark.

    /usr/bin/python3 tests/llm_server.py [--port-file PATH] [--mode MODE] [--delay-ms MS]
                                         [--retry-after S] [--api-key KEY] [--shape FILE]
                                         [--no-json-schema]

Serves POST /v1/chat/completions on 127.0.0.1 (port 0: the system's choice, printed on stdout
or written to --port-file once listening). Standard library only.

Every request is checked as the official `openai` client shapes it: POST, the path, the headers
Content-Type: application/json, Accept: application/json, a User-Agent, Authorization: Bearer KEY
(the key given by --api-key, when given), and a JSON body with model (a string), messages (a
non-empty list of {role, content}), temperature, seed, max_tokens, response_format and no key the
API does not know. A request that is wrong gets 400 with the reason in error.message.
--shape FILE (a JSON file written by tests/llm/openai_shape.mjs) adds the headers that client sent
to those checked.

What a request gets is its mode: the marker [[mode:NAME]] or [[mode:NAME:N]] in a message, else
--mode (default ok). With :N the first N requests of the same messages get NAME, then they are
answered (ok, or judge when --mode is judge): "fail the first N times then succeed". Modes:

    ok           200, content a JSON list of 5 items echoing the user message: objects with
                 instruction and answer, or instruction, chosen and rejected when the prompt says
                 "chosen"; the list inside {"items": [...]} when response_format json_object was
                 asked for; a usage block.
    slow:MS      ok after MS milliseconds (--delay-ms delays every answer)
    gate:K       ok once K requests in this mode have arrived (the first K wait for each other,
                 at most --gate-timeout seconds, default 20; each wait that ends so is counted)
    429          429 with Retry-After (--retry-after, default 1 second)
    500, 503     that status with an OpenAI-shaped error body
    401          an authentication error quoting the Authorization header it got
    malformed    200 with a body that is not JSON
    no_content   200, JSON without choices[0].message.content
    wrong_shape  200, a well-formed envelope whose content is not the list asked for
    not_json     200, a well-formed envelope whose content is prose, not JSON
    truncated    200, content a JSON list cut short, finish_reason "length"
    close        a status line and part of a body, then the connection closed
    hangup       the connection closed without a byte of answer

The judge (evaluate's, steps/evaluate/judge.h) is answered by these; the scores are those of the
marker [[judge:A:S]] in the messages (accuracy A, style S), else derived from the messages' hash:
    judge          200, content {"accuracy": {"analysis", "score"}, "style": {...}}
    judge_prose    200, content prose, not JSON
    judge_range    200, the object with a style score of 4
    judge_missing  200, the object without style
    judge_float    200, the object with an accuracy score of 2.5
    judge_trailing 200, the object followed by a sentence
    judge_fenced   200, the object inside a ```json fence
    judge_mixed    the distinct messages in the order first seen take turns: judge_prose,
                   judge_range, 429 the first time (then judge), judge, judge. A run through a
                   pipeline (no markers in the model's answers) so meets all three whenever it
                   asks about three answers or more; which answer gets which depends on the order
                   of arrival, the counts (in /stats under the mode each request got) do not.
--no-json-schema answers a request for response_format json_schema with 400, as a server
without structured outputs does.

GET /stats answers with the counts: {"total", "modes": {mode: n}, "bad_requests", "in_flight",
"max_in_flight", "early": retries that came before the Retry-After they were told, "gate_timeouts",
"last_request": {"headers": {...}, "body_keys": [...]}, "formats": {response_format type
(or "none"): n}}. POST /reset zeroes them.
"""
import argparse
import hashlib
import json
import os
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MARKER = re.compile(r"\[\[mode:([a-z0-9_]+)(?::(\d+))?\]\]")
JUDGE_MARKER = re.compile(r"\[\[judge:([0-9]+):([0-9]+)\]\]")
KNOWN_KEYS = {
    "model", "messages", "temperature", "seed", "max_tokens", "max_completion_tokens",
    "response_format", "top_p", "n", "stop", "presence_penalty", "frequency_penalty", "user",
    "logprobs", "top_logprobs", "logit_bias", "stream", "stream_options", "tools", "tool_choice",
    "parallel_tool_calls", "metadata", "store", "service_tier",
}
REQUIRED_HEADERS = {"content-type", "accept", "user-agent"}


class State:
    def __init__(self, opts):
        self.opts = opts
        self.lock = threading.Lock()
        self.gate = threading.Condition()
        self.shape_headers = set(REQUIRED_HEADERS)
        if opts.shape:
            with open(opts.shape) as f:
                shape = json.load(f)
            # What every official client sends, save the ones that vary by machine or call.
            self.shape_headers |= {
                h for h in shape.get("required_headers", []) if not h.startswith("x-stainless")
            }
        self.reset()

    def reset(self):
        with self.lock:
            self.total = 0
            self.modes = {}
            self.bad = 0
            self.in_flight = 0
            self.max_in_flight = 0
            self.early = 0
            self.seen = {}  # messages digest -> requests so far
            self.told = {}  # messages digest -> (time of a 429, seconds told to wait)
            self.last = None
            self.gated = 0
            self.gate_timeouts = 0
            self.formats = {}
            self.variant = {}  # judge_mixed: messages digest -> its turn


def items_for(user, kind_preference, n=5):
    """Deterministic items echoing the user message: a span of it as each answer."""
    text = " ".join(user.split())
    words = text.split(" ")
    items = []
    for k in range(n):
        start = (k * 7) % max(1, len(words))
        span = " ".join(words[start:start + 25]) or text or "empty"
        instruction = "Question %d: what does the text say about \"%s\"?" % (
            k + 1, " ".join(words[start:start + 4]))
        if kind_preference:
            items.append({"instruction": instruction, "chosen": span,
                          "rejected": " ".join(reversed(span.split(" ")))})
        else:
            items.append({"instruction": instruction, "answer": span})
    return items


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # kept-alive connections, as a real API serves them
    # Headers and body leave in two writes: with Nagle on, the body would wait for the
    # client's delayed ACK (40 ms), which no real server adds.
    disable_nagle_algorithm = True

    def log_message(self, *args):  # quiet: the tests read /stats, not a log
        pass

    def send_json(self, status, obj, headers=()):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def send_raw(self, status, data, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, message, kind="invalid_request_error", headers=()):
        self.send_json(status, {"error": {"message": message, "type": kind, "code": None}}, headers)

    def do_GET(self):
        st = self.server.state
        if self.path != "/stats":
            return self.error(404, "no such path: %s" % self.path)
        with st.lock:
            stats = {"total": st.total, "modes": dict(st.modes), "bad_requests": st.bad,
                     "in_flight": st.in_flight, "max_in_flight": st.max_in_flight,
                     "early": st.early, "gate_timeouts": st.gate_timeouts,
                     "last_request": st.last, "formats": dict(st.formats)}
        self.send_json(200, stats)

    def check(self, st, body_bytes):
        """The reason the request is not what the openai client sends, or None; and the body."""
        if not self.path.endswith("/chat/completions"):
            return "no such path: %s" % self.path, None
        headers = {k.lower(): v for k, v in self.headers.items()}
        missing = sorted(h for h in st.shape_headers if h not in headers)
        if missing:
            return "missing headers: %s" % ", ".join(missing), None
        if headers["content-type"].split(";")[0].strip() != "application/json":
            return "Content-Type must be application/json", None
        if "application/json" not in headers["accept"]:
            return "Accept must include application/json", None
        if "expect" in headers:
            return "Expect header sent (the openai client sends none)", None
        try:
            body = json.loads(body_bytes)
        except ValueError as e:
            return "body is not JSON: %s" % e, None
        if not isinstance(body, dict):
            return "body is not a JSON object", None
        unknown = sorted(set(body) - KNOWN_KEYS)
        if unknown:
            return "unknown body keys: %s" % ", ".join(unknown), body
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "model must be a non-empty string", body
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            return "messages must be a non-empty list", body
        for m in msgs:
            if not isinstance(m, dict) or set(m) != {"role", "content"}:
                return "each message must be {role, content}", body
            if m["role"] not in ("system", "user", "assistant", "developer"):
                return "bad role %r" % m["role"], body
            if not isinstance(m["content"], str):
                return "message content must be a string", body
        t = body.get("temperature", 1)
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 2:
            return "temperature must be a number in [0, 2]", body
        for k in ("seed", "max_tokens"):
            if k in body and (isinstance(body[k], bool) or not isinstance(body[k], int)):
                return "%s must be an integer" % k, body
        if "max_tokens" in body and body["max_tokens"] < 1:
            return "max_tokens must be >= 1", body
        rf = body.get("response_format")
        if rf is not None and (not isinstance(rf, dict) or
                               rf.get("type") not in ("text", "json_object", "json_schema")):
            return "response_format must be {type: text|json_object|json_schema}", body
        if rf is not None and rf["type"] == "json_schema":
            spec = rf.get("json_schema")
            if (not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or
                    not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", spec["name"]) or
                    not isinstance(spec.get("schema"), dict) or
                    spec.get("schema", {}).get("type") != "object" or
                    not isinstance(spec.get("strict", False), bool)):
                return "json_schema must be {name, strict, schema: {type: object, ...}}", body
            if st.opts.no_json_schema:
                return "response_format json_schema is not supported by this model", body
        if body.get("stream"):
            return "stream is not served here", body
        if st.opts.api_key is not None:
            if headers.get("authorization") != "Bearer " + st.opts.api_key:
                return "AUTH", body
        return None, body

    def do_POST(self):
        st = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        body_bytes = self.rfile.read(length)
        if self.path == "/reset":
            st.reset()
            return self.send_json(200, {"reset": True})
        with st.lock:
            st.total += 1
            st.in_flight += 1
            st.max_in_flight = max(st.max_in_flight, st.in_flight)
        try:
            self.answer(st, body_bytes)
        finally:
            with st.lock:
                st.in_flight -= 1

    def answer(self, st, body_bytes):
        why, body = self.check(st, body_bytes)
        with st.lock:
            if isinstance(body, dict) and why is None:
                rf = body.get("response_format")
                kind = rf["type"] if isinstance(rf, dict) else "none"
                st.formats[kind] = st.formats.get(kind, 0) + 1
            st.last = {"headers": {k.lower(): v for k, v in self.headers.items()
                                   if k.lower() != "authorization"},
                       "authorization": "authorization" in {k.lower() for k in self.headers},
                       "body_keys": sorted(body) if isinstance(body, dict) else None}
        if why == "AUTH":
            with st.lock:
                st.bad += 1
                st.modes["401"] = st.modes.get("401", 0) + 1
            got = self.headers.get("Authorization", "")
            return self.error(401, "Incorrect API key provided: %s" % got, "invalid_api_key")
        if why:
            with st.lock:
                st.bad += 1
            return self.error(400, why)
        text = "\n".join(m["content"] for m in body["messages"])
        user = "\n".join(m["content"] for m in body["messages"] if m["role"] == "user")
        digest = hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode()).hexdigest()
        found = MARKER.search(text)
        mode, first_n = (found.group(1), found.group(2)) if found else (st.opts.mode, None)
        arg = None
        if found is None and ":" in mode:
            mode, arg = mode.split(":", 1)
        elif mode in ("slow", "gate") and first_n is not None:
            arg, first_n = first_n, None
        now = time.monotonic()
        with st.lock:
            seen = st.seen.get(digest, 0)
            st.seen[digest] = seen + 1
            told = st.told.pop(digest, None)
            if told and now - told[0] < told[1]:
                st.early += 1
        if first_n is not None and seen >= int(first_n):
            mode = "judge" if st.opts.mode in ("judge", "judge_mixed") else "ok"
        if mode == "judge_mixed":
            with st.lock:
                variant = st.variant.setdefault(digest, len(st.variant) % 5)
            mode = ("judge_prose" if variant == 0 else "judge_range" if variant == 1
                    else "429" if variant == 2 and seen == 0 else "judge")
        with st.lock:
            st.modes[mode] = st.modes.get(mode, 0) + 1
        if mode == "gate":
            # Held until int(arg) gated requests have arrived: max_in_flight then shows whether
            # the client really had that many in flight at once (never more, never fewer).
            with st.gate:
                st.gated += 1
                st.gate.notify_all()
                if not st.gate.wait_for(lambda: st.gated >= int(arg or 1),
                                        timeout=st.opts.gate_timeout):
                    with st.lock:
                        st.gate_timeouts += 1
        delay = st.opts.delay_ms / 1000.0
        if mode == "slow":
            delay += int(arg or 100) / 1000.0
        if delay:
            time.sleep(delay)
        getattr(self, "mode_" + mode, self.mode_unknown)(st, body, user, digest)

    def mode_unknown(self, st, body, user, digest):
        self.error(400, "unknown test mode")

    def envelope(self, body, content, finish="stop"):
        prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
        completion_tokens = len(content.split())
        return {
            "id": "chatcmpl-test", "object": "chat.completion", "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": finish,
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }

    def mode_ok(self, st, body, user, digest):
        text = " ".join(m["content"] for m in body["messages"])
        items = items_for(user, "chosen" in text)
        json_object = (body.get("response_format") or {}).get("type") == "json_object"
        content = json.dumps({"items": items} if json_object else items)
        self.send_json(200, self.envelope(body, content))

    mode_slow = mode_ok
    mode_gate = mode_ok

    def mode_429(self, st, body, user, digest):
        wait = st.opts.retry_after
        with st.lock:
            st.told[digest] = (time.monotonic(), wait)
        self.error(429, "Rate limit reached; retry after %g s" % wait, "rate_limit_exceeded",
                   [("Retry-After", "%g" % wait)])

    def mode_500(self, st, body, user, digest):
        self.error(500, "The server had an error while processing your request.", "server_error")

    def mode_503(self, st, body, user, digest):
        self.error(503, "The engine is currently overloaded.", "server_error")

    def mode_401(self, st, body, user, digest):
        got = self.headers.get("Authorization", "")
        self.error(401, "Incorrect API key provided: %s" % got, "invalid_api_key")

    def mode_malformed(self, st, body, user, digest):
        self.send_raw(200, b'{"id": "chatcmpl-test", "choices": [{"message": {"content": "cut')

    def mode_no_content(self, st, body, user, digest):
        self.send_json(200, {"id": "chatcmpl-test", "choices": [], "usage": {}})

    def mode_wrong_shape(self, st, body, user, digest):
        content = json.dumps({"question": "not the list asked for", "count": 1})
        self.send_json(200, self.envelope(body, content))

    def mode_not_json(self, st, body, user, digest):
        self.send_json(200, self.envelope(body, "Sure! Here are some questions about the text."))

    def mode_truncated(self, st, body, user, digest):
        content = json.dumps(items_for(user, False))[:60]
        self.send_json(200, self.envelope(body, content, "length"))

    def mode_close(self, st, body, user, digest):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b'{"id": "chatcmpl-test", "choi')
        self.wfile.flush()
        self.hang_up()

    def mode_hangup(self, st, body, user, digest):
        self.hang_up()

    def judgement(self, body):
        """The judge's object for this request: scores of the [[judge:A:S]] marker or the hash."""
        text = "\n".join(m["content"] for m in body["messages"])
        found = JUDGE_MARKER.search(text)
        digest = hashlib.sha256(text.encode()).digest()
        acc, sty = ((int(found.group(1)), int(found.group(2))) if found
                    else (1 + digest[0] % 3, 1 + digest[1] % 3))
        return {"accuracy": {"analysis": "The facts check out to degree %d." % acc, "score": acc},
                "style": {"analysis": "The tone earns a %d." % sty, "score": sty}}

    def mode_judge(self, st, body, user, digest):
        self.send_json(200, self.envelope(body, json.dumps(self.judgement(body))))

    def mode_judge_prose(self, st, body, user, digest):
        self.send_json(200, self.envelope(body, "The answer is accurate and well written: 3/3."))

    def mode_judge_range(self, st, body, user, digest):
        j = self.judgement(body)
        j["style"]["score"] = 4
        self.send_json(200, self.envelope(body, json.dumps(j)))

    def mode_judge_missing(self, st, body, user, digest):
        j = self.judgement(body)
        del j["style"]
        self.send_json(200, self.envelope(body, json.dumps(j)))

    def mode_judge_float(self, st, body, user, digest):
        j = self.judgement(body)
        j["accuracy"]["score"] = 2.5
        self.send_json(200, self.envelope(body, json.dumps(j)))

    def mode_judge_trailing(self, st, body, user, digest):
        content = json.dumps(self.judgement(body)) + "\nI hope this evaluation helps."
        self.send_json(200, self.envelope(body, content))

    def mode_judge_fenced(self, st, body, user, digest):
        content = "```json\n" + json.dumps(self.judgement(body)) + "\n```"
        self.send_json(200, self.envelope(body, content))

    def hang_up(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--mode", default="ok")
    ap.add_argument("--delay-ms", type=float, default=0)
    ap.add_argument("--retry-after", type=float, default=1)
    ap.add_argument("--api-key")
    ap.add_argument("--shape")
    ap.add_argument("--gate-timeout", type=float, default=20)
    ap.add_argument("--no-json-schema", action="store_true")
    opts = ap.parse_args()
    server = Server(("127.0.0.1", opts.port), Handler)
    server.state = State(opts)
    port = server.server_address[1]
    if opts.port_file:
        tmp = opts.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, opts.port_file)
    else:
        print(port, flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
