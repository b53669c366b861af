#!/usr/bin/env bash
# Installs, from Debian's packages, the real clients the test suite drives
# when they are missing: curl, python3 (smtplib, imaplib), openssl, tmux,
# neomutt, ldapsearch (ldap-utils) and unzip. Tests that need one skip cleanly when
# it cannot be installed.
set -u
need=()
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v neomutt >/dev/null 2>&1 || need+=(neomutt)
command -v ldapsearch >/dev/null 2>&1 || need+=(ldap-utils)
command -v unzip >/dev/null 2>&1 || need+=(unzip)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: missing ${need[*]}; install them to run the tests that use them (they skip otherwise)" >&2
  exit 0
fi
echo "test-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
{ apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; } >/tmp/relais-test-deps.log 2>&1 ||
  echo "test-deps: could not install ${need[*]} (see /tmp/relais-test-deps.log); tests that need them will skip" >&2
exit 0
