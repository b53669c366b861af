#!/usr/bin/env bash
# Runs every fuzz target of the module for a long time each (default 5m):
#   bench/fuzz.sh [DURATION] [TARGET-REGEXP]
# e.g. bench/fuzz.sh 30m, or bench/fuzz.sh 10m 'FuzzSession|FuzzOpen'.
# The suite's bounded run (make fuzz, scripts/fuzz.sh) uses the same
# targets for seconds; this one is for looking for bugs. A finding is
# written under the package's testdata/fuzz/TARGET/ (commit it: it becomes
# a regression seed) and the run goes on with the next target; the exit
# status is 1 if any target found something. Each target's log is kept in
# $LOGDIR (default /tmp/relais-fuzz-logs).
set -uo pipefail
cd "$(dirname "$0")/.."
time=${1:-5m}
only=${2:-.}
logdir=${LOGDIR:-/tmp/relais-fuzz-logs}
mkdir -p "$logdir"
failed=()
total=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    if ! [[ $target =~ $only ]]; then
      continue
    fi
    total=$((total + 1))
    log="$logdir/$(basename "$dir")-$target.log"
    echo "fuzz: $pkg $target ($time) -> $log"
    start=$(date +%s)
    if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$time" "$pkg" >"$log" 2>&1; then
      echo "fuzz: $target: ok in $(($(date +%s) - start)) s, $(grep -o 'execs: [0-9]*' "$log" | tail -1)"
    elif grep -q 'context deadline exceeded' "$log" &&
      ! grep -qE 'Failing input written|panic:|^\s+[A-Za-z0-9_]+\.go:[0-9]+:' "$log"; then
      # golang/go#75804 (see scripts/fuzz.sh): the time ran out mid-input.
      echo "fuzz: $target: ok (ended on golang/go#75804's bare deadline error)"
    else
      echo "fuzz: $target: FAILED; see $log"
      grep -E 'Failing input written|To re-run' -A1 "$log" || tail -20 "$log"
      failed+=("$pkg $target")
    fi
  done
done
echo "fuzz: $total targets, ${#failed[@]} failed"
for f in "${failed[@]}"; do
  echo "  $f"
done
[ ${#failed[@]} -eq 0 ]
