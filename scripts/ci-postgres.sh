# Starts a throwaway PostgreSQL cluster for the test suite and exports its URL.
#
#   source scripts/ci-postgres.sh     # sets KEYPOOL_TEST_POSTGRES_URL and KEYPOOL_TEST_PG_BINDIR,
#                                     # and stops the cluster when the calling shell exits
#
# Installs Debian's postgresql when no server binaries are found. PostgreSQL refuses to run as root,
# so under root (as CI runs) the cluster belongs to the `postgres` user the package creates.
# The cluster listens on loopback only, on a free port, with fsync off: it holds nothing worth keeping.

ci_pg_bindir() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ]; then
      echo "$dir"
      return 0
    fi
  done
  return 1
}

if ! KEYPOOL_TEST_PG_BINDIR="$(ci_pg_bindir)"; then
  echo "ci-postgres: installing postgresql" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  KEYPOOL_TEST_PG_BINDIR="$(ci_pg_bindir)"
fi
export KEYPOOL_TEST_PG_BINDIR

# Runs a PostgreSQL tool as a user the server accepts.
ci_pg_as() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

CI_PG_DIR="$(mktemp -d /tmp/keypool-ci-pg.XXXXXX)"
if [ "$(id -u)" = 0 ]; then chown postgres "$CI_PG_DIR"; fi
CI_PG_PORT="$("${BUN:-node_modules/.bin/bun}" -e 'const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } }); console.log(s.port); s.stop(true)')"

ci_pg_as "$KEYPOOL_TEST_PG_BINDIR/initdb" -D "$CI_PG_DIR/data" -U postgres -A trust --no-sync >/dev/null
ci_pg_as "$KEYPOOL_TEST_PG_BINDIR/pg_ctl" -D "$CI_PG_DIR/data" -l "$CI_PG_DIR/server.log" -w -s \
  -o "-c listen_addresses=127.0.0.1 -p $CI_PG_PORT -c unix_socket_directories=$CI_PG_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
  start

ci_pg_stop() {
  ci_pg_as "$KEYPOOL_TEST_PG_BINDIR/pg_ctl" -D "$CI_PG_DIR/data" -m immediate -s stop >/dev/null 2>&1 || true
  rm -rf "$CI_PG_DIR"
}
trap ci_pg_stop EXIT

export KEYPOOL_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$CI_PG_PORT/postgres"
echo "ci-postgres: PostgreSQL $("$KEYPOOL_TEST_PG_BINDIR/postgres" --version | awk '{print $3}') on 127.0.0.1:$CI_PG_PORT" >&2
