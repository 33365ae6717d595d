#!/usr/bin/python3
"""Parses a JUnit XML file with xml.etree and prints what it holds as one JSON object.

    /usr/bin/python3 tests/ci/junit_summary.py FILE

{"suites": [{"name", "tests", "failures", "errors", "skipped", "properties": {...},
"cases": [{"classname", "name", "time", "properties": {...}, "outcome": "passed" | "failure" |
"skipped" | "error", "message", "text"}]}]}. Exits 1 when the file is not well-formed XML or
not JUnit's shape (testsuites > testsuite > testcase), printing why.
"""
import json
import sys
import xml.etree.ElementTree as ET


def properties(element):
    props = element.find("properties")
    return {} if props is None else {p.get("name"): p.get("value") for p in props.findall("property")}


def main():
    try:
        root = ET.parse(sys.argv[1]).getroot()
    except ET.ParseError as e:
        print(f"not well-formed: {e}")
        return 1
    if root.tag != "testsuites":
        print(f"the root is <{root.tag}>, not <testsuites>")
        return 1
    suites = []
    for suite in root.findall("testsuite"):
        cases = []
        for case in suite.findall("testcase"):
            outcome, message, text = "passed", None, None
            for tag in ("failure", "skipped", "error"):
                found = case.find(tag)
                if found is not None:
                    outcome, message, text = tag, found.get("message"), found.text
            cases.append({"classname": case.get("classname"), "name": case.get("name"),
                          "time": float(case.get("time")), "properties": properties(case),
                          "outcome": outcome, "message": message, "text": text})
        suites.append({"name": suite.get("name"), "tests": int(suite.get("tests")),
                       "failures": int(suite.get("failures")), "errors": int(suite.get("errors")),
                       "skipped": int(suite.get("skipped")), "properties": properties(suite),
                       "cases": cases})
    print(json.dumps({"suites": suites}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
