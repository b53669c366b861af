#!/usr/bin/env bash
# Directory import and search at national scale (issue 3's targets: a
# 2,000,000-line RPPS extraction imports in under 60 s; search p99 under
# 5 ms on 2M rows). Synthetic data only, generated here.
#
#   bench/directory.sh [ROWS]      (default 2000000)
set -euo pipefail
rows=${1:-2000000}
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/relais-bench-directory.XXXXXX)
trap 'rm -rf "$work"' EXIT

go build -o "$work/relais" ./cmd/relais
echo "generating a synthetic RPPS extraction of $rows lines..."
go run ./bench/gen-directory --kind rpps --rows "$rows" >"$work/rpps.txt"
ls -lh "$work/rpps.txt" | awk '{print "file size: " $5}'

echo
echo "== first import (empty directory)"
/usr/bin/time -f "wall %e s, max RSS %M KiB" "$work/relais" directory import --data "$work/data" --kind rpps "$work/rpps.txt"
echo
echo "== re-import of the same file (nothing changes)"
/usr/bin/time -f "wall %e s, max RSS %M KiB" "$work/relais" directory import --data "$work/data" --kind rpps "$work/rpps.txt"

echo
echo "== search latency on $rows rows (p50/p99 per query type)"
RELAIS_BENCH_DIRECTORY_ROWS=$rows go test -run '^$' -bench 'BenchmarkSearchDirectory' -benchtime 2000x -timeout 60m ./storage/sqlite/
