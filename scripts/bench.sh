#!/usr/bin/env bash
# make bench: every benchmark of the house, each with the iteration count that
# suits it, then the side-by-side comparison with OpenSSH, pdsh and rsync
# (bench/, about 10 minutes, then its scale cases, about 10 more; each prints
# its tables at the end).
set -euo pipefail
go=${GO:-go}
run() { echo; echo "== $*"; "$go" test -run '^$' -benchmem -count=1 "$@"; }
run -bench 'Create|ApplyReports' -benchtime 3000x ./services/registry
run -bench 'List10k' -benchtime 20x ./services/registry
run -bench 'CreateToUp' -benchtime 20x ./services/skyworker ./services/sagemakerworker
run -bench . -benchtime 200x ./internal/agent
run -bench . -benchtime 3x ./internal/filesync
run -bench '^Benchmark[^S]' -benchtime "${BENCHTIME:-10x}" -timeout 60m ./bench
# Issue 10's scale curve: 1,000 clusters or 128 nodes a run, so fewer runs.
run -bench Scale -benchtime "${SCALE_BENCHTIME:-3x}" -timeout 60m ./bench
