#!/usr/bin/python3
"""Validates OpenLineage run events, one JSON object a line, against a JSON schema.

    /usr/bin/python3 tests/openlineage/check_events.py SCHEMA EVENTS.jsonl

Each line must be one JSON object that the schema (Draft 2020-12, Debian's python3-jsonschema)
accepts. The formats the schema names are checked here too, whatever optional packages the
jsonschema installation has: runId a UUID, eventTime an RFC 3339 time with its zone, producer and
_schemaURL absolute URIs. Prints "N events valid" and exits 0, or prints each problem with its line
number and exits 1 (2: unusable arguments).
"""
import json
import re
import sys
import uuid
from urllib.parse import urlparse

import jsonschema

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def check_format(checker, name, test):
    @checker.checks(name)
    def _check(instance):
        return not isinstance(instance, str) or test(instance)


def is_uuid(text):
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False


def is_uri(text):
    u = urlparse(text)
    return bool(u.scheme) and bool(u.netloc or u.path) and " " not in text


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    checker = jsonschema.FormatChecker()
    check_format(checker, "uuid", is_uuid)
    check_format(checker, "date-time", lambda t: bool(RFC3339.match(t)))
    check_format(checker, "uri", is_uri)
    validator = jsonschema.Draft202012Validator(schema, format_checker=checker)
    problems, n = [], 0
    with open(sys.argv[2], encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                event = json.loads(line)
            except ValueError as e:
                problems.append(f"line {number}: not JSON: {e}")
                continue
            n += 1
            for error in validator.iter_errors(event):
                where = "/".join(str(p) for p in error.absolute_path)
                problems.append(f"line {number}: at /{where}: {error.message}")
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"{n} events valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
