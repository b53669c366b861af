#!/usr/bin/env bash
# Crash consistency (issue 7): relais serve on a fresh data directory under
# mixed load (SMTP submission with STARTTLS+AUTH, IMAP APPEND and STORE,
# chat over the WebSocket) is killed with kill -9 after a random 2-8 s,
# ROUNDS times; after each restart on the same data directory it checks
# that the server starts cleanly (every port answering within 30 s, no
# error-level log line) and that every acknowledgement the clients
# journaled (fsynced, after the server's 250 / OK / ack) is still true:
# each message in each recipient's INBOX, each APPEND at its APPENDUID,
# each flag set, each chat message at its seq; UIDs never repeat or go
# back. Prints a summary; exits 1 on any loss. See bench/README.md.
#
#   bench/crash.sh [ROUNDS|quick] [FLAGS...]     (20; quick = 3)
#   bench/crash.sh 20 --database postgres://root@127.0.0.1:5432/crash
#
# FLAGS go to the checker (go run ./bench/crash -help lists them:
# --database, --dir, --keep, --min, --max, --seed, clients per kind).
set -euo pipefail
rounds=${1:-20}
[ $# -gt 0 ] && shift
[ "$rounds" = quick ] && rounds=3
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o bin/relais ./cmd/relais
go build -o "$tmp/crash" ./bench/crash
"$tmp/crash" -relais bin/relais -rounds "$rounds" "$@"
