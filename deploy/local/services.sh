#!/usr/bin/env bash
# Starts or stops the three Polku services in the background, each with a pid and log file.
# Usage: services.sh start|stop|status
source "$(dirname "$0")/common.sh"

HOST="${POLKU_HOST:-127.0.0.1}"
declare -A PORTS=(
  [ingest]="${POLKU_INGEST_PORT:-8000}"
  [stager]="${POLKU_STAGER_PORT:-8001}"
  [actions]="${POLKU_ACTIONS_PORT:-8002}"
)
POLKU="$ROOT/.venv/bin/polku"

pidfile() { echo "$POLKU_HOME/run/$1.pid"; }
running() { [ -f "$(pidfile "$1")" ] && kill -0 "$(cat "$(pidfile "$1")")" 2>/dev/null; }

wait_ready() {
  local name=$1 url="http://$HOST:${PORTS[$1]}/readyz" deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
    running "$name" || break
    sleep 0.5
  done
  log "$name is not ready; see $POLKU_HOME/logs/$name.log"; return 1
}

start() {
  for name in ingest stager actions; do
    if running "$name"; then continue; fi
    # exec: the pid recorded is the service's own (not a wrapper shell that `stop` would kill
    # while the service lived on), and no shell keeps the caller's stdout open.
    (cd "$ROOT" && exec nohup "$POLKU" "$name" >>"$POLKU_HOME/logs/$name.log" 2>&1 </dev/null) &
    echo $! >"$(pidfile "$name")"
  done
  for name in ingest stager actions; do wait_ready "$name"; done
  cat <<INFO
Polku is up:
  ingest API   http://$HOST:${PORTS[ingest]}  (docs at /docs)
  stager       http://$HOST:${PORTS[stager]}/metrics
  actions      http://$HOST:${PORTS[actions]}/metrics
  Kafka        127.0.0.1:$KAFKA_PORT
  PostgreSQL   127.0.0.1:$PG_PORT (database $PG_DB)
  logs         make logs   ·   stop with make down
INFO
}

stop() {
  for name in actions stager ingest; do
    running "$name" || { rm -f "$(pidfile "$name")"; continue; }
    local pid; pid=$(cat "$(pidfile "$name")")
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    rm -f "$(pidfile "$name")"
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) for n in ingest stager actions; do running "$n" && echo "$n running" || echo "$n stopped"; done ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
