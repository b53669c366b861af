#!/usr/bin/env bash
# Runs every fuzz target of the module for a bounded time each
# (default 10s): scripts/fuzz.sh [DURATION].
#
# Go 1.26's fuzz coordinator can report a bare "context deadline exceeded"
# when -fuzztime ends while a worker is mid-input (golang/go#75804, fixed in
# Go 1.27): no input is written and nothing reproduces. Such a run is tried
# once more; any other failure, or a written failing input, fails at once.
set -euo pipefail
cd "$(dirname "$0")/.."
time=${1:-10s}
log=/tmp/relais-fuzz.log
# deadline_flake: the log has the bare deadline error and no sign of a real
# finding (a written input, a panic, a test's own error line).
deadline_flake() {
  grep -q 'context deadline exceeded' "$log" &&
    ! grep -qE 'Failing input written|panic:|^\s+[A-Za-z0-9_]+\.go:[0-9]+:' "$log"
}
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz: $pkg $target ($time)"
    for attempt in 1 2; do
      if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$time" "$pkg" >"$log" 2>&1; then
        break
      fi
      if [ "$attempt" = 1 ] && deadline_flake; then
        echo "fuzz: $target: bare 'context deadline exceeded' at the -fuzztime boundary (golang/go#75804); trying once more"
        continue
      fi
      cat "$log"
      exit 1
    done
  done
done
