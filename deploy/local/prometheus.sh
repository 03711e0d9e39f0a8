#!/usr/bin/env bash
# Debian's Prometheus and promtool, for the tests of the alert rules and the Grafana dashboard
# (tests/unit/test_alert_rules.py, tests/e2e/test_observability.py). The tests run
# /usr/bin/promtool and /usr/bin/prometheus and never download a binary, so both come from
# Debian's `prometheus` package, installed here when missing. The tests start their own
# Prometheus on a free port with a scratch data directory, so whatever the package's own service
# does (on systemd it starts on :9090) is left alone.
# Usage: prometheus.sh install|status
source "$(dirname "$0")/common.sh"

PROMETHEUS=/usr/bin/prometheus
PROMTOOL=/usr/bin/promtool

installed() { [ -x "$PROMETHEUS" ] && [ -x "$PROMTOOL" ]; }

install() {
  installed && return 0
  log "installing Prometheus and promtool from Debian's package"
  # --no-install-recommends: the exporters it recommends would start and listen on ports.
  apt_install --no-install-recommends prometheus
  installed || { log "prometheus or promtool is still missing after the install"; exit 1; }
}

case "${1:-}" in
  install) install ;;
  status) if installed; then "$PROMTOOL" --version | head -1;
          else echo "prometheus or promtool missing"; exit 1; fi ;;
  *) echo "usage: $0 install|status" >&2; exit 2 ;;
esac
