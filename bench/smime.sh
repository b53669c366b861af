#!/usr/bin/env bash
# S/MIME throughput (issue 4): sign+encrypt of a 10 KiB message per second
# (one recipient, RSA 2048, SHA-256, AES-256-CBC) and open (decrypt +
# verify), beside OpenSSL's RSA-2048 sign/s measured in the same run on the
# same machine. One Relais sign+encrypt costs one RSA private-key operation
# (the signature) plus one public-key operation, so OpenSSL's sign/s is the
# ceiling to compare with; Go's own RSA-2048 sign/s is printed too, as the
# floor of what the Go code can reach.
#
#   bench/smime.sh [BENCHTIME]      (default 3s)
set -euo pipefail
benchtime=${1:-3s}
cd "$(dirname "$0")/.."

echo "== Relais (crypto/smime), benchtime $benchtime"
go_out=$(go test -run '^$' -bench 'BenchmarkSignEncrypt10KiB|BenchmarkOpen10KiB|BenchmarkRSASign2048' -benchtime "$benchtime" -count 1 ./crypto/smime/)
echo "$go_out" | grep -E '^(goos|goarch|cpu|Benchmark)'
relais_se=$(echo "$go_out" | awk '/^BenchmarkSignEncrypt10KiB/ { for (i = 1; i < NF; i++) if ($(i+1) == "msgs/s") print $i }')
relais_open=$(echo "$go_out" | awk '/^BenchmarkOpen10KiB/ { for (i = 1; i < NF; i++) if ($(i+1) == "msgs/s") print $i }')
go_sign=$(echo "$go_out" | awk '/^BenchmarkRSASign2048/ { for (i = 1; i < NF; i++) if ($(i+1) == "sign/s") print $i }')

echo
echo "== $(openssl version)"
ssl_out=$(openssl speed -seconds 3 rsa2048 2>/dev/null)
echo "$ssl_out" | grep -E '^(version|built|options| +sign|rsa +2048)' || true
# Line: "rsa 2048 bits 0.000598s 0.000017s   1672.2  58823.5" (sign/s is
# the second-to-last column; OpenSSL 3.0 layout).
ssl_sign=$(echo "$ssl_out" | awk '/^rsa +2048 bits/ { print $(NF-1) }' | tail -1)

echo
echo "== summary"
printf 'relais sign+encrypt 10 KiB: %s msgs/s\n' "${relais_se:-?}"
printf 'relais open (decrypt+verify) 10 KiB: %s msgs/s\n' "${relais_open:-?}"
printf 'go crypto/rsa 2048 sign: %s sign/s\n' "${go_sign:-?}"
printf 'openssl rsa2048 sign: %s sign/s\n' "${ssl_sign:-?}"
if [[ -n "${relais_se:-}" && -n "${ssl_sign:-}" ]]; then
  awk -v r="$relais_se" -v s="$ssl_sign" 'BEGIN { printf "ratio relais sign+encrypt / openssl sign: %.2f\n", r / s }'
fi
