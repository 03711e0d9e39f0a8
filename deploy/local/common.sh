# Shared settings for the local scripts: where state lives and which ports to use.
# Sourced, not executed. Every value can be overridden from the environment.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
POLKU_HOME="${POLKU_HOME:-$ROOT/.polku}"
mkdir -p "$POLKU_HOME/logs" "$POLKU_HOME/run"

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
LOG4J_VERSION="${LOG4J_VERSION:-2.24.3}"
KAFKA_PORT="${POLKU_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${POLKU_KAFKA_CONTROLLER_PORT:-9093}"
PG_PORT="${POLKU_PG_PORT:-5432}"
PG_USER="${POLKU_PG_USER:-polku}"
PG_PASSWORD="${POLKU_PG_PASSWORD:-polku}"
PG_DB="${POLKU_PG_DB:-polku}"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }

# as_root COMMAND...: run it as root, through sudo for any other user.
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else log "root is needed for: $*; run this as root, or install sudo"; exit 1; fi
}

# apt_install [APT-GET OPTION...] PACKAGE...: Debian's packages, after refreshing the package
# lists (a fresh machine or container may have none).
apt_install() {
  command -v apt-get >/dev/null \
    || { log "apt-get not found: install Debian's packages ($*) some other way"; exit 1; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
    || { log "apt-get update failed (see above): check the network and the apt sources"; exit 1; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null \
    || { log "apt-get install $* failed (see above)"; exit 1; }
}

# wait_for_port HOST PORT SECONDS: true once something accepts TCP connections there.
wait_for_port() {
  local host=$1 port=$2 deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
    sleep 0.3
  done
  return 1
}
