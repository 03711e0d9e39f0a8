#!/usr/bin/env bash
# Runs the project's own PostgreSQL cluster on 127.0.0.1, from Debian's packages.
# Creates the role and database Polku uses. Usage: postgres.sh install|start|stop|status
source "$(dirname "$0")/common.sh"

pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

install() {
  [ -n "$(pg_bindir)" ] && return 0
  log "installing PostgreSQL from Debian's packages"
  # Polku runs its own cluster; keep the package from creating and starting a second one.
  as_root mkdir -p /etc/postgresql-common
  echo "create_main_cluster = false" | as_root tee /etc/postgresql-common/createcluster.conf >/dev/null
  apt_install postgresql
}

# The server refuses to run as root, so as root it runs as the `postgres` system user,
# which must be able to reach its data directory.
if [ "$(id -u)" = 0 ]; then RUN_AS=(runuser -u postgres --); else RUN_AS=(); fi

data_dir() {
  if [ -n "${POLKU_PG_DATA:-}" ]; then echo "$POLKU_PG_DATA"; return; fi
  if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$POLKU_HOME" 2>/dev/null; then
    echo "/var/tmp/polku-pg-$(echo "$ROOT" | md5sum | cut -c1-8)"
  else
    echo "$POLKU_HOME/pg"
  fi
}
PGDATA_DIR=$(data_dir)
LOGFILE="$POLKU_HOME/logs/postgres.log"

pg() { "${RUN_AS[@]}" "$(pg_bindir)/$1" "${@:2}"; }
running() { [ -f "$PGDATA_DIR/postmaster.pid" ] && pg pg_ctl -D "$PGDATA_DIR" status >/dev/null 2>&1; }
psql_admin() { "${RUN_AS[@]}" psql -h "$PGDATA_DIR" -p "$PG_PORT" -U postgres -d postgres -qtAX "$@"; }

start() {
  install
  if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
    log "creating a PostgreSQL cluster in $PGDATA_DIR"
    mkdir -p "$PGDATA_DIR"
    [ "$(id -u)" = 0 ] && chown postgres: "$PGDATA_DIR"
    chmod 700 "$PGDATA_DIR"
    pg initdb -D "$PGDATA_DIR" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$PGDATA_DIR/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PGDATA_DIR'
max_connections = 200
shared_buffers = 256MB
max_wal_size = 2GB
CONF
  fi
  touch "$LOGFILE"; [ "$(id -u)" = 0 ] && chown postgres: "$LOGFILE"
  if ! running; then
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    pg pg_ctl -D "$PGDATA_DIR" -o "-p $PG_PORT" -l "$LOGFILE" -w -t 60 start >/dev/null
  fi
  if [ "$(psql_admin -c "select 1 from pg_roles where rolname='$PG_USER'")" != 1 ]; then
    psql_admin -c "create role $PG_USER login createdb password '$PG_PASSWORD'"
  fi
  if [ "$(psql_admin -c "select 1 from pg_database where datname='$PG_DB'")" != 1 ]; then
    psql_admin -c "create database $PG_DB owner $PG_USER"
  fi
}

stop() {
  running || return 0
  pg pg_ctl -D "$PGDATA_DIR" -m fast -w stop >/dev/null
  log "PostgreSQL stopped"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) if running; then echo "postgres running on 127.0.0.1:$PG_PORT ($PGDATA_DIR)"; else echo "postgres stopped"; exit 1; fi ;;
  *) echo "usage: $0 install|start|stop|restart|status" >&2; exit 2 ;;
esac
