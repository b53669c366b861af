#!/usr/bin/env bash
# Makes sure the PostgreSQL server the tests use is up: RELAIS_TEST_POSTGRES,
# or 127.0.0.1:5432 database "test" (trust auth). When nothing answers and a
# Debian cluster is installed but stopped, it is started. Without any server
# the PostgreSQL tests skip (storage/postgres/pgtest says why).
set -u
if [ "${RELAIS_TEST_POSTGRES:-}" = off ]; then
  echo "postgres: RELAIS_TEST_POSTGRES=off, the PostgreSQL tests will skip" >&2
  exit 0
fi
if [ -n "${RELAIS_TEST_POSTGRES:-}" ]; then
  exit 0 # the caller's own server
fi
ready() { pg_isready -q -h 127.0.0.1 -p 5432 -t 3 2>/dev/null; }
command -v pg_isready >/dev/null 2>&1 || { echo "postgres: no client tools; the PostgreSQL tests skip unless a server answers on 127.0.0.1:5432" >&2; exit 0; }
if ! ready && command -v pg_lsclusters >/dev/null 2>&1; then
  pg_lsclusters --no-header 2>/dev/null | while read -r ver name port status _; do
    if [ "$port" = 5432 ] && [ "$status" != online ]; then
      echo "postgres: starting cluster $ver/$name" >&2
      pg_ctlcluster "$ver" "$name" start >/dev/null 2>&1 || echo "postgres: could not start $ver/$name" >&2
    fi
  done
  for _ in 1 2 3 4 5 6 7 8 9 10; do ready && break; sleep 1; done
fi
if ! ready; then
  echo "postgres: nothing answers on 127.0.0.1:5432; the PostgreSQL tests will skip" >&2
  exit 0
fi
# The database the tests use.
if ! psql -h 127.0.0.1 -p 5432 -d test -Atc 'SELECT 1' >/dev/null 2>&1; then
  createdb -h 127.0.0.1 -p 5432 test >/dev/null 2>&1 ||
    echo "postgres: database test is missing and could not be created; the PostgreSQL tests will skip" >&2
fi
exit 0
