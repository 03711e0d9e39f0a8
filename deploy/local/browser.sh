#!/usr/bin/env bash
# Debian's Chromium and its ChromeDriver, for the console's browser tests (tests/e2e/console/).
# The tests drive /usr/bin/chromium through /usr/bin/chromedriver and never download a browser,
# so both come from Debian's packages, installed here when missing. Usage: browser.sh install|status
source "$(dirname "$0")/common.sh"

CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver

installed() { [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ]; }

install() {
  installed && return 0
  log "installing Chromium and ChromeDriver from Debian's packages"
  apt_install chromium chromium-driver
  installed || { log "chromium or chromedriver is still missing after the install"; exit 1; }
}

case "${1:-}" in
  install) install ;;
  status) if installed; then "$CHROMIUM" --version; "$CHROMEDRIVER" --version;
          else echo "chromium or chromedriver missing"; exit 1; fi ;;
  *) echo "usage: $0 install|status" >&2; exit 2 ;;
esac
