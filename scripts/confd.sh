#!/usr/bin/env bash
# Make confd available for tests, CI and local runs (it renders nginx's
# upstream from the nodes registered in etcd).
#
# Usage:
#   scripts/confd.sh        ensure the binary exists; print its directory
#   scripts/confd.sh path   print the absolute path of confd
#
# Only the result goes to stdout (one line); all progress goes to stderr.
#
# Lookup order:
#   1. $CONFD_BIN, if set and executable
#   2. confd on PATH, if it reports $CONFD_VERSION
#   3. <repo>/.confd/bin/confd (git-ignored), if it reports $CONFD_VERSION
#   4. otherwise build it into <repo>/.confd/bin with the local Go toolchain
#
# confd is not packaged by Debian. Building needs only `go` and the Go module
# proxy. v0.16.0 predates Go modules (it vendored with dep), and resolving its
# imports today pulls dependencies that no longer fit it, so the module source
# is fetched with `go mod download`, copied to a writable temp dir, given
# scripts/confd/go.mod and go.sum (the exact revisions of its Gopkg.lock) and
# built there with -mod=readonly: nothing is resolved, every checksum is pinned.
set -euo pipefail

CONFD_VERSION=v0.16.0
CONFD_MODULE=github.com/kelseyhightower/confd

PROG=confd.sh
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
PINS="$REPO_ROOT/scripts/confd"
CONFD_DIR="$REPO_ROOT/.confd"
LOCAL_BIN="$CONFD_DIR/bin"

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit 1
}
usage() {
  printf 'usage: %s [path]\n' "$0" >&2
  exit 2
}

# has_version BIN: true if BIN is executable and `BIN -version` reports $CONFD_VERSION
# ("confd 0.16.0 (Git SHA: ..., Go Version: ...)").
has_version() {
  local out
  [[ -x "$1" ]] || return 1
  out="$("$1" -version 2>/dev/null)" || return 1
  [[ "$out" == "confd ${CONFD_VERSION#v} "* ]]
}

# find_bin: print the path of a usable confd, if one is already available.
find_bin() {
  local path

  if [[ -n "${CONFD_BIN:-}" ]]; then
    if [[ -x "$CONFD_BIN" ]]; then
      printf '%s/%s\n' "$(cd "$(dirname "$CONFD_BIN")" && pwd -P)" "$(basename "$CONFD_BIN")"
      return 0
    fi
    log "CONFD_BIN=$CONFD_BIN is not executable; ignoring it"
  fi

  if path="$(command -v confd 2>/dev/null)" && has_version "$path"; then
    printf '%s/confd\n' "$(cd "$(dirname "$path")" && pwd -P)"
    return 0
  fi

  if has_version "$LOCAL_BIN/confd"; then
    printf '%s\n' "$LOCAL_BIN/confd"
    return 0
  fi

  return 1
}

BUILD_TMP=""
cleanup() {
  if [[ -n "$BUILD_TMP" ]]; then
    chmod -R u+w "$BUILD_TMP" 2>/dev/null || true
    rm -rf "$BUILD_TMP"
  fi
  rm -f "$LOCAL_BIN/.confd.tmp.$$"
}

build() {
  command -v go >/dev/null 2>&1 ||
    die "go not found on PATH; install Go (https://go.dev/dl/) or set CONFD_BIN to a confd $CONFD_VERSION"

  mkdir -p "$LOCAL_BIN"

  # Serialise concurrent callers (e.g. parallel test workers).
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$CONFD_DIR/build.lock"
    if ! flock -n 9; then
      log "waiting for another build of confd $CONFD_VERSION to finish..."
      flock 9
    fi
    # Someone else may have finished the build while we waited.
    if has_version "$LOCAL_BIN/confd"; then
      return 0
    fi
  else
    log "flock not available; building without a lock"
  fi

  local tmp json mod_dir src start
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/confd-build.XXXXXX")"
  BUILD_TMP="$tmp"
  trap cleanup EXIT
  start=$SECONDS

  # Self-contained: ignore any go.work, never change go.mod/go.sum, no VCS
  # stamping, a static binary (no C compiler needed), and the local Go even
  # if a go.mod line asked for another.
  export GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 GOTOOLCHAIN=local

  log "building confd $CONFD_VERSION into $LOCAL_BIN (one-off, needs the Go module proxy)..."
  json="$(cd "$tmp" && go mod download -json "$CONFD_MODULE@$CONFD_VERSION")" ||
    die "go mod download $CONFD_MODULE@$CONFD_VERSION failed: $(printf '%s' "$json" | sed -n 's/^[[:space:]]*"Error": "\(.*\)",\{0,1\}$/\1/p' | head -n1)"
  mod_dir="$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' | head -n1)"
  [[ -n "$mod_dir" && -d "$mod_dir" ]] ||
    die "go mod download did not report a source directory for $CONFD_MODULE@$CONFD_VERSION"

  # The module cache is read-only; build from a writable copy, as the main
  # module, with the pinned go.mod and go.sum.
  src="$tmp/confd"
  cp -R "$mod_dir" "$src"
  chmod -R u+w "$src"
  cp "$PINS/go.mod" "$PINS/go.sum" "$src/"

  log "go build (downloads the pinned dependencies on first use)"
  (cd "$src" && go build -trimpath -ldflags='-s -w' -o "$LOCAL_BIN/.confd.tmp.$$" .) ||
    die "go build of confd $CONFD_VERSION failed (see go output above)"
  mv -f "$LOCAL_BIN/.confd.tmp.$$" "$LOCAL_BIN/confd"

  has_version "$LOCAL_BIN/confd" ||
    die "built binary $LOCAL_BIN/confd does not report version $CONFD_VERSION"
  log "built confd $CONFD_VERSION in $((SECONDS - start))s"
}

main() {
  local want_path=false bin
  case $# in
    0) ;;
    1)
      [[ "$1" == path ]] || usage
      want_path=true
      ;;
    *) usage ;;
  esac

  if ! bin="$(find_bin)"; then
    build
    bin="$LOCAL_BIN/confd"
  fi

  if $want_path; then
    printf '%s\n' "$bin"
  else
    dirname "$bin"
  fi
}

main "$@"
