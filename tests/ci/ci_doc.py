#!/usr/bin/python3
"""Runs the shell commands of a CI workflow written in docs/ci.md, as written.

    /usr/bin/python3 tests/ci/ci_doc.py DOC github|gitlab [--list]

Takes the first ```yaml block after the line <!-- ci:github --> (or <!-- ci:gitlab -->) of DOC,
reads it with PyYAML, and runs, in the current folder and environment, in order:
- github: the `run:` of every step of every job, each as GitHub Actions runs it with
  `shell: bash` (bash --noprofile --norc -eo pipefail);
- gitlab: the `script:` of every job, in one such shell, as GitLab's runner does.
A line holding `# ci:post` (one that posts to GitHub or GitLab) is replaced by `:`; `if:`
conditions are not evaluated. With --list, prints the commands instead of running them.
Exits with the status of the first command block that fails (1 for a document that does not
read), else 0.
"""
import subprocess
import sys

import yaml

POST_MARKER = "# ci:post"


def yaml_block(doc, which):
    marker = f"<!-- ci:{which} -->"
    lines = doc.splitlines()
    try:
        at = lines.index(marker)
    except ValueError:
        raise SystemExit(f"no line {marker}")
    start = next(i for i in range(at + 1, len(lines)) if lines[i].startswith("```"))
    if lines[start].strip() != "```yaml":
        raise SystemExit(f"the block after {marker} is not ```yaml")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
    return yaml.safe_load("\n".join(lines[start + 1:end]))


def without_posts(script):
    return "\n".join(":" if POST_MARKER in line else line for line in script.splitlines())


def blocks(workflow, which):
    if which == "github":
        for job in workflow["jobs"].values():
            for step in job["steps"]:
                if "run" in step:
                    yield step.get("name", "?"), without_posts(step["run"])
    else:
        for name, job in workflow.items():
            if isinstance(job, dict) and "script" in job:
                yield name, without_posts("\n".join(job["script"]))


def main():
    args = sys.argv[1:]
    listing = "--list" in args
    args = [a for a in args if a != "--list"]
    if len(args) != 2 or args[1] not in ("github", "gitlab"):
        print(__doc__, file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as f:
        workflow = yaml_block(f.read(), args[1])
    for name, script in blocks(workflow, args[1]):
        if listing:
            print(f"## {name}\n{script}")
            continue
        print(f"== {name}", flush=True)
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script])
        if done.returncode != 0:
            print(f"== {name}: exit status {done.returncode}", flush=True)
            return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
