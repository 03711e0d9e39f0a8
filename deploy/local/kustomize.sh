#!/usr/bin/env bash
# kustomize, which renders deploy/k8s for the manifest tests (tests/deploy/test_k8s.py), built
# from its Go module into $POLKU_HOME/tools/bin: the Go command fetches the source from the Go
# module proxy and builds it with the machine's Go (1.26 or newer; kustomize needs it). Nothing
# else is downloaded. Idempotent: a kustomize of the pinned version is left as it is.
# Usage: kustomize.sh install (`make kustomize`) | path (where it is; fails if not installed:
# the tests never build it themselves)
source "$(dirname "$0")/common.sh"

KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.8.2}"
GO_NEEDED=1.26  # the `go` line of that version's go.mod
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
  go="$(go_command)" \
    || { log "building kustomize needs Go $GO_NEEDED or newer (go on PATH or /usr/local/go)"; exit 1; }
  local have
  have="$(GOTOOLCHAIN=local "$go" env GOVERSION)"  # e.g. go1.26.8
  if ! printf '%s\n' "$GO_NEEDED" "${have#go}" | sort -V -C; then
    log "building kustomize $KUSTOMIZE_VERSION needs Go $GO_NEEDED or newer; $go is $have"
    exit 1
  fi
  log "building kustomize $KUSTOMIZE_VERSION with $have (takes a minute or two)"
  mkdir -p "$TOOLS/bin"
  # The machine's own Go (no toolchain download), modules and build cache kept under $TOOLS.
  GOTOOLCHAIN=local GOBIN="$TOOLS/bin" GOPATH="$TOOLS/go" GOMODCACHE="$TOOLS/go/mod" \
    GOCACHE="$TOOLS/go/cache" GOFLAGS=-modcacherw \
    "$go" install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" \
    || { log "building kustomize failed (see above); it needs the Go module proxy"; exit 1; }
  installed || { log "kustomize $KUSTOMIZE_VERSION is still missing after the build"; exit 1; }
}

case "${1:-}" in
  install) install ;;
  path) installed || { log "kustomize $KUSTOMIZE_VERSION is not installed: run \`make kustomize\`"; exit 1; }
        echo "$KUSTOMIZE" ;;
  *) echo "usage: $0 install|path" >&2; exit 2 ;;
esac
