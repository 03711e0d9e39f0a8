#!/usr/bin/env bash
# kustomize, which renders deploy/k8s for the manifest tests (tests/deploy/test_k8s.py), built
# from its Go module into $POLKU_HOME/tools/bin: the Go command fetches the source from the Go
# module proxy and builds it with the machine's Go (1.26 or newer; kustomize needs it). Nothing
# else is downloaded. Idempotent: a kustomize of the pinned version is left as it is.
# Usage: kustomize.sh install|path
source "$(dirname "$0")/common.sh"

KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.8.2}"
TOOLS="$POLKU_HOME/tools"
KUSTOMIZE="$TOOLS/bin/kustomize"

go_command() {
  if command -v go >/dev/null; then command -v go
  elif [ -x /usr/local/go/bin/go ]; then echo /usr/local/go/bin/go
  else return 1; fi
}

installed() { [ -x "$KUSTOMIZE" ] && [ "$("$KUSTOMIZE" version 2>/dev/null)" = "$KUSTOMIZE_VERSION" ]; }

install() {
  installed && return 0
  local go
  go="$(go_command)" || { log "kustomize needs Go 1.26 or newer (go on PATH or /usr/local/go)"; exit 1; }
  log "building kustomize $KUSTOMIZE_VERSION with $("$go" version | cut -d' ' -f3) (takes a minute or two)"
  mkdir -p "$TOOLS/bin"
  # The machine's own Go (no toolchain download), modules and build cache kept under $TOOLS.
  GOTOOLCHAIN=local GOBIN="$TOOLS/bin" GOPATH="$TOOLS/go" GOMODCACHE="$TOOLS/go/mod" \
    GOCACHE="$TOOLS/go/cache" GOFLAGS=-modcacherw \
    "$go" install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  installed || { log "kustomize $KUSTOMIZE_VERSION is still missing after the build"; exit 1; }
}

case "${1:-}" in
  install) install ;;
  path) install; echo "$KUSTOMIZE" ;;
  *) echo "usage: $0 install|path" >&2; exit 2 ;;
esac
