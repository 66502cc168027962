# A throwaway PostgreSQL cluster for the Postgres store tests. Sourced by .ci/run:
#
#   source .ci/postgres.sh
#   trap factory_pg_stop EXIT
#   factory_pg_start   # exports FACTORY_TEST_POSTGRES_URL and FACTORY_REQUIRE_POSTGRES_TESTS
#
# factory_pg_start installs Debian's `postgresql` package when no server binaries are present
# (apt-get, as root, or through sudo), initdb's a cluster into a fresh temporary folder, and
# starts it on 127.0.0.1 only, on the first free port from 54329, with its socket in that folder.
# Postgres refuses to run as root, so as root the server runs as the `postgres` user (which the
# package creates; created here if missing). The `factory` superuser logs in over TCP with a
# random password (scram-sha-256), so the tests' URL carries a password like a real one would.
# fsync is off: the cluster is deleted when the run ends. factory_pg_stop stops it and removes
# the folder; it is safe to call twice, or when the start failed halfway.

FACTORY_PG_DIR=""
FACTORY_PG_BIN=""
FACTORY_PG_AS=()

factory_pg_find_bin() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
    echo "$dir"
  fi
}

factory_pg_install() {
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo -n)
    else
      echo "PostgreSQL is not installed and installing it needs root (apt-get install postgresql)" >&2
      return 1
    fi
  fi
  echo "installing PostgreSQL (Debian package postgresql)"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends postgresql >/dev/null
}

# Runs a command as the user the server runs as (from /, which that user can always enter).
factory_pg_as() {
  if [ "${#FACTORY_PG_AS[@]}" -gt 0 ]; then
    (cd / && "${FACTORY_PG_AS[@]}" "$@")
  else
    "$@"
  fi
}

factory_pg_port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

factory_pg_start() {
  FACTORY_PG_BIN="$(factory_pg_find_bin)"
  if [ -z "$FACTORY_PG_BIN" ]; then
    factory_pg_install
    FACTORY_PG_BIN="$(factory_pg_find_bin)"
    [ -n "$FACTORY_PG_BIN" ] || { echo "no PostgreSQL server binaries under /usr/lib/postgresql after installing" >&2; return 1; }
  fi
  "$FACTORY_PG_BIN/postgres" --version

  FACTORY_PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/factory-pg.XXXXXX")"
  if [ "$(id -u)" = 0 ]; then
    if ! id -u postgres >/dev/null 2>&1; then
      useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin postgres
    fi
    FACTORY_PG_AS=(runuser -u postgres --)
    chown postgres: "$FACTORY_PG_DIR"
  fi

  local password port
  password="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  printf '%s\n' "$password" >"$FACTORY_PG_DIR/pwfile"
  [ "$(id -u)" != 0 ] || chown postgres: "$FACTORY_PG_DIR/pwfile"
  chmod 600 "$FACTORY_PG_DIR/pwfile"
  factory_pg_as "$FACTORY_PG_BIN/initdb" -D "$FACTORY_PG_DIR/data" -U factory --pwfile="$FACTORY_PG_DIR/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale >"$FACTORY_PG_DIR/initdb.log" 2>&1 \
    || { cat "$FACTORY_PG_DIR/initdb.log" >&2; return 1; }
  rm -f "$FACTORY_PG_DIR/pwfile"

  port=54329
  while ! factory_pg_port_free "$port"; do
    port=$((port + 1))
    [ "$port" -lt 54400 ] || { echo "no free port for PostgreSQL in 54329-54399" >&2; return 1; }
  done
  factory_pg_as "$FACTORY_PG_BIN/pg_ctl" -D "$FACTORY_PG_DIR/data" -l "$FACTORY_PG_DIR/server.log" -w -t 60 \
    -o "-k $FACTORY_PG_DIR -p $port -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null \
    || { cat "$FACTORY_PG_DIR/server.log" >&2; return 1; }

  export FACTORY_TEST_POSTGRES_URL="postgres://factory:$password@127.0.0.1:$port/postgres"
  export FACTORY_REQUIRE_POSTGRES_TESTS=1
  echo "PostgreSQL running on 127.0.0.1:$port (data in $FACTORY_PG_DIR; FACTORY_TEST_POSTGRES_URL exported)"
}

factory_pg_stop() {
  if [ -n "$FACTORY_PG_DIR" ] && [ -d "$FACTORY_PG_DIR" ]; then
    if [ -f "$FACTORY_PG_DIR/data/postmaster.pid" ]; then
      factory_pg_as "$FACTORY_PG_BIN/pg_ctl" -D "$FACTORY_PG_DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1 \
        || echo "warning: stopping the test PostgreSQL failed; see $FACTORY_PG_DIR/server.log" >&2
    fi
    if [ ! -f "$FACTORY_PG_DIR/data/postmaster.pid" ]; then
      rm -rf "$FACTORY_PG_DIR"
    fi
  fi
  FACTORY_PG_DIR=""
  return 0
}
