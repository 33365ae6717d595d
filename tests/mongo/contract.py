"""contract.py - the MongoDB warehouse's wire contract, against a mock server.

Runs the real sluice binary against mockupdb (Debian's python3-mockupdb; run
with /usr/bin/python3) and asserts the exact commands it sends and how it
takes the replies:

  import   ping on admin, then per collection one ordered 'update' in the
           URI's database whose updates are {q: {key: ...}, u: <the document
           as in the export file>, upsert: true} (key "_id" for users, "link"
           for documents), in file order; a second import sends the same.
  error    a server error on the first bulk ("not primary") fails the import
           with the server's text on stderr and no further writes.
  refused  a document the driver refuses ('$set' as a key) fails the import
           before anything is written.
  export   ping, then per collection one 'find' with an empty filter sorted
           by the key; the files written hold what the server returned.
  down     an unreachable server fails at open, quickly, and the URI's
           password is masked in the message.

Usage: contract.py SLUICE_BIN FIXTURE_DIR
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict

from mockupdb import MockupDB

SLUICE, FIXTURE = sys.argv[1], sys.argv[2]
DB = "twin_test"
# (collection, export file, key field), in the order sluice writes them.
COLLECTIONS = [
    ("users", "UserDocument.json", "_id"),
    ("articles", "ArticleDocument.json", "link"),
    ("posts", "PostDocument.json", "link"),
    ("repositories", "RepositoryDocument.json", "link"),
]
# mongo-c-driver 1.23 needs a maxWireVersion of at least 6 (MongoDB 3.6);
# 9 is MongoDB 4.4. No logicalSessionTimeoutMinutes: no sessions, so no
# lsid in the commands and no endSessions at close.
HELLO = {"ismaster": True, "minWireVersion": 0, "maxWireVersion": 9}
TIMEOUT = 10


def load(name):
    with open(os.path.join(FIXTURE, name), encoding="utf-8") as f:
        return json.load(f, object_pairs_hook=OrderedDict)


def pairs(value):
    """A value with every document as its list of (key, value) pairs, so that
    comparing two of them compares key order too."""
    if isinstance(value, dict):
        return [(k, pairs(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [pairs(v) for v in value]
    return value


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def start_server():
    server = MockupDB(auto_ismaster=HELLO, request_timeout=TIMEOUT)
    # The driver sends the legacy isMaster in its handshake (matched above,
    # case-insensitively); answer 'hello' too should a later one use it.
    server.autoresponds("hello", **HELLO)
    port = server.run()
    return server, "mongodb://127.0.0.1:%d/%s" % (port, DB)


def sluice(store, *args):
    return subprocess.Popen([SLUICE, "--store", store, "warehouse", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def abandon(proc):
    """Stops a run that a failed assertion left waiting on the server."""
    proc.kill()
    proc.communicate()


def finish(proc):
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise Fail("sluice did not finish; stderr: %s" % err)
    # A sanitized build reports leaks and errors on stderr: on a failure path
    # the exit status alone would not tell.
    check("Sanitizer" not in err and "runtime error:" not in err,
          "sluice's stderr has a sanitizer report:\n%s" % err)
    return proc.returncode, out, err


def expect_command(server, name, db):
    request = server.receives(timeout=TIMEOUT)
    check(request.command_name == name,
          "expected '%s', got %r" % (name, request.doc))
    check(request.namespace == db,
          "'%s' went to database %r, not %r" % (name, request.namespace, db))
    return request


def expect_nothing_more(server):
    try:
        request = server.receives(timeout=0.5)
    except AssertionError:  # mockupdb: "expected to receive ..., got nothing"
        return
    raise Fail("unexpected command: %r" % (request.doc,))


def expect_update(server, collection, key, docs):
    request = expect_command(server, "update", DB)
    doc = request.doc
    check(doc["update"] == collection,
          "update of %r, expected %r" % (doc["update"], collection))
    check(doc.get("ordered") is True, "update of %s not ordered: %r" % (collection, doc))
    extra = set(doc) - {"update", "ordered", "updates", "$db"}
    check(not extra, "update of %s has unexpected fields %s" % (collection, sorted(extra)))
    updates = doc["updates"]
    check(len(updates) == len(docs),
          "%s: %d updates for %d documents" % (collection, len(updates), len(docs)))
    for i, (update, expected) in enumerate(zip(updates, docs)):
        where = "%s update %d" % (collection, i)
        check(pairs(update["q"]) == [(key, expected[key])],
              "%s: q is %r, expected {%s: %r}" % (where, update["q"], key, expected[key]))
        check(pairs(update["u"]) == pairs(expected),
              "%s: u is %r, expected the document as exported %r" % (where, update["u"], expected))
        check(update.get("upsert") is True, "%s: not an upsert" % where)
        check(update.get("multi", False) is False, "%s: multi" % where)
        extra = set(update) - {"q", "u", "upsert", "multi"}
        check(not extra, "%s: unexpected fields %s" % (where, sorted(extra)))
    return request


def scenario_import(tmp):
    """Import twice: the same upserts both times (the second replaces in
    place: matched, nothing inserted)."""
    server, uri = start_server()
    try:
        for round_ in (1, 2):
            proc = sluice(os.path.join(tmp, "store"), "import", FIXTURE, "--warehouse", uri)
            try:
                expect_command(server, "ping", "admin").ok()
                total_docs = 0
                for collection, file, key in COLLECTIONS:
                    docs = load(file)
                    request = expect_update(server, collection, key, docs)
                    if round_ == 1:
                        request.ok(n=len(docs), nModified=0,
                                   upserted=[{"index": i, "_id": d["_id"]}
                                             for i, d in enumerate(docs)])
                    else:
                        request.ok(n=len(docs), nModified=0)
                    if collection != "users":
                        total_docs += len(docs)
            except BaseException:
                abandon(proc)
                raise
            code, out, err = finish(proc)
            check(code == 0, "import %d exited %d: %s" % (round_, code, err))
            users = len(load("UserDocument.json"))
            want = "imported %d users and %d documents from %s" % (users, total_docs, FIXTURE)
            check(want in out, "import %d printed %r, expected %r" % (round_, out, want))
            expect_nothing_more(server)
    finally:
        server.stop()


def scenario_error(tmp):
    """The server refuses the first bulk: sluice fails with its message and
    writes no other collection."""
    server, uri = start_server()
    try:
        proc = sluice(os.path.join(tmp, "store"), "import", FIXTURE, "--warehouse", uri)
        try:
            expect_command(server, "ping", "admin").ok()
            request = expect_update(server, "users", "_id", load("UserDocument.json"))
            request.command_err(code=10107, errmsg="not primary")
        except BaseException:
            abandon(proc)
            raise
        code, out, err = finish(proc)
        check(code != 0, "import exited 0 after a server error; stdout: %r" % out)
        check("not primary" in err, "stderr lacks the server's message: %r" % err)
        check("writing users" in err, "stderr does not name the collection: %r" % err)
        check(uri in err, "stderr does not name the server: %r" % err)
        expect_nothing_more(server)
    finally:
        server.stop()


def scenario_refused(tmp):
    """A document the driver refuses (a top-level '$' key would be read as
    update operators): the import fails naming it, and nothing is written."""
    fixture = os.path.join(tmp, "fixture")
    os.mkdir(fixture)
    with open(os.path.join(fixture, "UserDocument.json"), "w", encoding="utf-8") as f:
        json.dump([{"_id": "u1", "first_name": "A", "last_name": "B"},
                   {"_id": "u2", "$set": {"first_name": "C"}}], f)
    server, uri = start_server()
    try:
        proc = sluice(os.path.join(tmp, "store"), "import", fixture, "--warehouse", uri)
        try:
            expect_command(server, "ping", "admin").ok()
        except BaseException:
            abandon(proc)
            raise
        code, out, err = finish(proc)
        check(code != 0, "import exited 0 with a '$set' key; stdout: %r" % out)
        check("element 2" in err and "$set" in err, "stderr does not name the element: %r" % err)
        expect_nothing_more(server)
    finally:
        server.stop()


def scenario_export(tmp):
    """Export: one sorted find per collection; the files hold the replies."""
    server, uri = start_server()
    out_dir = os.path.join(tmp, "export")
    served = {}
    try:
        proc = sluice(os.path.join(tmp, "store"), "export", out_dir, "--warehouse", uri)
        try:
            expect_command(server, "ping", "admin").ok()
            for collection, file, key in COLLECTIONS:
                request = expect_command(server, "find", DB)
                doc = request.doc
                check(doc["find"] == collection, "find on %r, expected %r" % (doc["find"], collection))
                check(pairs(doc.get("filter")) == [], "find on %s: filter %r" % (collection, doc.get("filter")))
                check(pairs(doc.get("sort")) == [(key, 1)],
                      "find on %s: sort %r, expected {%s: 1}" % (collection, doc.get("sort"), key))
                extra = set(doc) - {"find", "filter", "sort", "$db"}
                check(not extra, "find on %s: unexpected fields %s" % (collection, sorted(extra)))
                served[file] = sorted(load(file), key=lambda d: d[key])
                request.replies({"cursor": {"id": 0, "ns": "%s.%s" % (DB, collection),
                                            "firstBatch": served[file]}})
        except BaseException:
            abandon(proc)
            raise
        code, out, err = finish(proc)
        check(code == 0, "export exited %d: %s" % (code, err))
        for _, file, _ in COLLECTIONS:
            with open(os.path.join(out_dir, file), encoding="utf-8") as f:
                written = json.load(f, object_pairs_hook=OrderedDict)
            check(pairs(written) == pairs(served[file]),
                  "%s: wrote %r, the server returned %r" % (file, written, served[file]))
        expect_nothing_more(server)
    finally:
        server.stop()


def scenario_down(tmp):
    """Nothing listens: the open fails within seconds, password masked."""
    # A port just bound and closed again: refused, almost surely.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = "mongodb://twin:hunter2-secret@127.0.0.1:%d/%s" % (port, DB)
    began = time.monotonic()
    proc = sluice(os.path.join(tmp, "store"), "import", FIXTURE, "--warehouse", uri)
    code, out, err = finish(proc)
    elapsed = time.monotonic() - began
    check(code != 0, "import exited 0 with no server")
    check("hunter2" not in err and "hunter2" not in out, "the password is shown: %r" % err)
    check("mongodb://twin:****@127.0.0.1:%d/%s" % (port, DB) in err,
          "stderr does not show the masked URI: %r" % err)
    check(elapsed < 5, "took %.1f s to fail" % elapsed)


def main():
    scenarios = [scenario_import, scenario_error, scenario_refused, scenario_export,
                 scenario_down]
    failed = 0
    for scenario in scenarios:
        tmp = tempfile.mkdtemp(prefix="sluice-mongo-contract-")
        try:
            scenario(tmp)
            print("ok   %s" % scenario.__name__)
        except (Fail, AssertionError) as e:
            failed += 1
            print("FAIL %s: %s" % (scenario.__name__, e))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
