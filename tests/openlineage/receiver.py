#!/usr/bin/python3
"""A local OpenLineage HTTP receiver for the tests: records the events POSTed to it.

    /usr/bin/python3 tests/openlineage/receiver.py --port-file PATH --out EVENTS.jsonl
                                                   [--fail-first N] [--status S] [--path P]
                                                   [--hang]

Listens on 127.0.0.1 (a port of the system's choice, written to --port-file once listening, whole,
by rename). Every POST whose body is a JSON object and whose Content-Type is application/json is
appended to --out as one line, in the order received, and answered 201, as Marquez does; a POST
to another path than --path (default /api/v1/lineage, Marquez's) gets 404, anything else 400. With --fail-first N the first N POSTs get status S (default 503) and are not
recorded: "a receiver that fails at first". With --hang every POST is read and never answered. GET /stats answers {"posts": all POSTs, "recorded": n,
"refused": n, "paths": [the distinct paths POSTed to]}. Standard library only.
"""
import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self, opts):
        self.opts = opts
        self.lock = threading.Lock()
        self.posts = self.recorded = self.refused = 0
        self.paths = []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        st = self.server.state
        if self.path != "/stats":
            return self.answer(404, {"error": "no such path"})
        with st.lock:
            return self.answer(200, {"posts": st.posts, "recorded": st.recorded,
                                     "refused": st.refused, "paths": st.paths})

    def do_POST(self):
        st = self.server.state
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.server.state.opts.hang:
            time.sleep(3600)
        with st.lock:
            st.posts += 1
            if self.path not in st.paths:
                st.paths.append(self.path)
            if st.posts <= st.opts.fail_first:
                st.refused += 1
                return self.answer(st.opts.status, {"error": "failing on purpose"})
            if self.path != st.opts.path:
                st.refused += 1
                return self.answer(404, {"error": "no such path"})
            try:
                event = json.loads(body)
            except ValueError:
                event = None
            if not isinstance(event, dict) or \
                    self.headers.get("Content-Type") != "application/json":
                st.refused += 1
                return self.answer(400, {"error": "not a JSON object sent as application/json"})
            with open(st.opts.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")
            st.recorded += 1
        return self.answer(201, {})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--fail-first", type=int, default=0)
    ap.add_argument("--status", type=int, default=503)
    ap.add_argument("--path", default="/api/v1/lineage")
    ap.add_argument("--hang", action="store_true")
    opts = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.state = State(opts)
    tmp = opts.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.rename(tmp, opts.port_file)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
