#!/bin/sh
# scripts/check-layers on the tree (it must pass), then on copies of the
# tree's sources with one bad include planted each (it must fail, naming
# the file and line). Usage: check_layers.sh SOURCE_ROOT
set -u
src=$1
check="/usr/bin/python3 $src/scripts/check-layers"
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fails=0

$check "$src" || { echo "FAIL: the tree itself does not pass"; fails=1; }

# A copy of the sources only (*.c, *.h and the exceptions list), made once
# and copied afresh for each case.
mkdir -p "$tmp/base/scripts" || exit 1
(cd "$src" && find lib artifacts metadata plugins orchestrator steps include tests bench \
    -name build -prune -o \( -name '*.c' -o -name '*.h' \) -print | tar -cf - -T -) |
    (cd "$tmp/base" && tar -xf -) || exit 1
cp "$src/scripts/check-layers.exceptions" "$tmp/base/scripts/"
fresh() {
    rm -rf "$tmp/t" && cp -R "$tmp/base" "$tmp/t" || exit 1
}

# expect_fail FILE LINE WHAT LINE_TEXT: LINE_TEXT planted at LINE of FILE
# must make the check fail with FILE:LINE in its report.
expect_fail() {
    fresh
    printf '%s\n' "$4" > "$tmp/line"
    sed -i "$(($2 - 1))r $tmp/line" "$tmp/t/$1"
    if $check "$tmp/t" 2> "$tmp/err"; then
        echo "FAIL: $3 passed the check"
        fails=1
    elif ! grep -q "^$1:$2: " "$tmp/err"; then
        echo "FAIL: $3 is not reported as $1:$2:"
        cat "$tmp/err"
        fails=1
    else
        echo "ok: $3: $(grep "^$1:$2: " "$tmp/err")"
    fi
}

# The copy without a planted line passes: what fails below is the line.
fresh
$check "$tmp/t" || { echo "FAIL: the copy of the tree does not pass"; fails=1; }

expect_fail lib/buf.c 2 "lib including the pipeline" '#include "pipeline.h"'
expect_fail artifacts/store.c 3 "artifacts including metadata" '#include "meta.h"'
expect_fail metadata/record.c 2 "metadata including the registry" '#include "registry.h"'
expect_fail plugins/registry.c 2 "the registry including the pipeline" '#include "value.h"'
expect_fail orchestrator/pipeline/bind.c 2 "the pipeline including the scheduler" '#include "run.h"'
expect_fail orchestrator/cli/main.c 2 "the orchestrator including a step" '#include "text.h"'
expect_fail steps/text/text.c 2 "a step including the store" '#include "store.h"'
expect_fail tests/unit/test_core.c 2 "a path component" '#include "../lib/buf.h"'
expect_fail bench/bench_load.c 2 "a path component in bench" '#include "pipeline/pipeline.h"'

# Two headers of one base name: bare includes could not tell them apart.
fresh
cp "$tmp/t/lib/buf.h" "$tmp/t/orchestrator/dag/buf.h"
if $check "$tmp/t" 2> "$tmp/err" || ! grep -q "buf.h' is not unique" "$tmp/err"; then
    echo "FAIL: a second buf.h is not reported"
    cat "$tmp/err"
    fails=1
fi
exit $fails
