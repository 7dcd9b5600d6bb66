#!/usr/bin/env bash
# Make NSQ's nsqd and nsqlookupd binaries available for tests, CI and local runs.
#
# Usage:
#   scripts/nsqd.sh                  ensure the binaries exist; print their directory
#   scripts/nsqd.sh path nsqd        print the absolute path of nsqd
#   scripts/nsqd.sh path nsqlookupd  print the absolute path of nsqlookupd
#
# Only the result goes to stdout (one line); all progress goes to stderr.
#
# Lookup order:
#   1. $NSQD_BIN_DIR, if set and it holds an executable nsqd
#   2. nsqd and nsqlookupd on PATH (same directory), if both report $NSQ_VERSION
#   3. <repo>/.nsq/bin (git-ignored), if it holds both at $NSQ_VERSION
#   4. otherwise build both into <repo>/.nsq/bin with the local Go toolchain
#
# Building needs only `go` and the Go module proxy. `go install ...@version`
# refuses NSQ because its go.mod has a replace directive, so the module source
# is fetched with `go mod download`, copied to a writable temp dir and built
# there as the main module.
set -euo pipefail

NSQ_VERSION=v1.3.0
NSQ_MODULE=github.com/nsqio/nsq

PROG=nsqd.sh
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
NSQ_DIR="$REPO_ROOT/.nsq"
LOCAL_BIN="$NSQ_DIR/bin"

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit 1
}
usage() {
  printf 'usage: %s [path nsqd|nsqlookupd]\n' "$0" >&2
  exit 2
}

# has_version BIN: true if BIN is executable and `BIN --version` reports $NSQ_VERSION.
has_version() {
  local out
  [[ -x "$1" ]] || return 1
  out="$("$1" --version 2>/dev/null)" || return 1
  [[ "$out" == *" ${NSQ_VERSION} "* || "$out" == *" ${NSQ_VERSION}" ]]
}

# find_bin_dir: print the directory holding the binaries, if already available.
find_bin_dir() {
  local nsqd_path lookupd_path dir

  if [[ -n "${NSQD_BIN_DIR:-}" ]]; then
    if [[ -x "$NSQD_BIN_DIR/nsqd" ]]; then
      (cd "$NSQD_BIN_DIR" && pwd -P)
      return 0
    fi
    log "NSQD_BIN_DIR=$NSQD_BIN_DIR has no executable nsqd; ignoring it"
  fi

  if nsqd_path="$(command -v nsqd 2>/dev/null)" &&
    lookupd_path="$(command -v nsqlookupd 2>/dev/null)"; then
    dir="$(cd "$(dirname "$nsqd_path")" && pwd -P)"
    if [[ "$dir" == "$(cd "$(dirname "$lookupd_path")" && pwd -P)" ]] &&
      has_version "$dir/nsqd" && has_version "$dir/nsqlookupd"; then
      printf '%s\n' "$dir"
      return 0
    fi
  fi

  if has_version "$LOCAL_BIN/nsqd" && has_version "$LOCAL_BIN/nsqlookupd"; then
    printf '%s\n' "$LOCAL_BIN"
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
  rm -f "$LOCAL_BIN/.nsqd.tmp.$$" "$LOCAL_BIN/.nsqlookupd.tmp.$$"
}

build() {
  command -v go >/dev/null 2>&1 ||
    die "go not found on PATH; install Go (https://go.dev/dl/) or set NSQD_BIN_DIR to a directory holding nsqd $NSQ_VERSION"

  mkdir -p "$LOCAL_BIN"

  # Serialise concurrent callers (e.g. parallel test workers).
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$NSQ_DIR/build.lock"
    if ! flock -n 9; then
      log "waiting for another build of nsq $NSQ_VERSION to finish..."
      flock 9
    fi
    # Someone else may have finished the build while we waited.
    if has_version "$LOCAL_BIN/nsqd" && has_version "$LOCAL_BIN/nsqlookupd"; then
      return 0
    fi
  else
    log "flock not available; building without a lock"
  fi

  local tmp json mod_dir src app start
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/nsq-build.XXXXXX")"
  BUILD_TMP="$tmp"
  trap cleanup EXIT
  start=$SECONDS

  # Keep the build self-contained: ignore any go.work, let go fix up go.sum if
  # needed (checksums are still verified), no VCS stamping, and build
  # static binaries (no C compiler needed).
  export GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0

  log "building nsqd and nsqlookupd $NSQ_VERSION into $LOCAL_BIN (one-off, needs the Go module proxy)..."
  json="$(cd "$tmp" && go mod download -json "$NSQ_MODULE@$NSQ_VERSION")" ||
    die "go mod download $NSQ_MODULE@$NSQ_VERSION failed: $(printf '%s' "$json" | sed -n 's/^[[:space:]]*"Error": "\(.*\)",\{0,1\}$/\1/p' | head -n1)"
  mod_dir="$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' | head -n1)"
  [[ -n "$mod_dir" && -d "$mod_dir" ]] ||
    die "go mod download did not report a source directory for $NSQ_MODULE@$NSQ_VERSION"

  # The module cache is read-only; build from a writable copy as the main
  # module so NSQ's own go.mod (with its replace directive) applies.
  src="$tmp/nsq"
  cp -R "$mod_dir" "$src"
  chmod -R u+w "$src"

  for app in nsqd nsqlookupd; do
    log "go build ./apps/$app"
    (cd "$src" && go build -trimpath -ldflags='-s -w' -o "$LOCAL_BIN/.$app.tmp.$$" "./apps/$app") ||
      die "go build of $app $NSQ_VERSION failed (see go output above)"
  done
  for app in nsqd nsqlookupd; do
    mv -f "$LOCAL_BIN/.$app.tmp.$$" "$LOCAL_BIN/$app"
  done

  has_version "$LOCAL_BIN/nsqd" && has_version "$LOCAL_BIN/nsqlookupd" ||
    die "built binaries in $LOCAL_BIN do not report version $NSQ_VERSION"
  log "built nsq $NSQ_VERSION in $((SECONDS - start))s"
}

main() {
  local want="" dir
  case $# in
    0) ;;
    2)
      [[ "$1" == path ]] || usage
      case "$2" in
        nsqd | nsqlookupd) want="$2" ;;
        *) usage ;;
      esac
      ;;
    *) usage ;;
  esac

  if ! dir="$(find_bin_dir)"; then
    build
    dir="$LOCAL_BIN"
  fi

  if [[ -z "$want" ]]; then
    printf '%s\n' "$dir"
  else
    [[ -x "$dir/$want" ]] || die "$want not found in $dir"
    printf '%s\n' "$dir/$want"
  fi
}

main "$@"
