#!/usr/bin/env bash
# Runs every Fuzz target of the module briefly. go test -fuzz takes one target
# per run, so find them and run each for the given time (default 5s).
set -euo pipefail
fuzztime=${1:-5s}
go=${GO:-go}
git ls-files '*_test.go' 2>/dev/null | xargs grep -l '^func Fuzz' | while read -r f; do
  dir=./$(dirname "$f")
  for target in $(grep -oE '^func Fuzz[A-Za-z0-9_]+' "$f" | sed 's/^func //'); do
    echo "fuzz $dir $target ($fuzztime)"
    $go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$dir" >/tmp/rh-fuzz.log 2>&1 || { cat /tmp/rh-fuzz.log; exit 1; }
  done
done
