#!/usr/bin/env bash
# Installs Debian's PostgreSQL if needed and starts a throw-away cluster on a loopback
# port. Prints the SQLAlchemy URL of a fresh database on stdout (everything else to stderr).
# usage: .ci/start-postgres.sh [port]   (default 54329)
set -euo pipefail
port=${1:-54329}
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >&2
fi
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
pgdata=/tmp/qiao-pg-$port
if ! "$bindir/pg_isready" -h 127.0.0.1 -p "$port" -q; then
  rm -rf "$pgdata"; mkdir -p "$pgdata"; chown postgres:postgres "$pgdata"
  su postgres -c "$bindir/initdb -D $pgdata -U postgres --auth=trust -E UTF8 --locale=C.UTF-8" >&2
  su postgres -c "$bindir/pg_ctl -D $pgdata -l $pgdata/log -w -o '-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$pgdata -c fsync=off -c synchronous_commit=off -c full_page_writes=off' start" >&2
fi
psql -h 127.0.0.1 -p "$port" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='qiao_test'" | grep -q 1 \
  || psql -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE qiao_test" >&2
echo "postgresql+psycopg://postgres@127.0.0.1:$port/qiao_test"
