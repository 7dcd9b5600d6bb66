#!/usr/bin/env bash
# Installs the Debian packages whose binaries are missing, and only those
# (needs root and apt-get then); does nothing when all are there. The daemons'
# own services are not started (no init system in containers): tests run them
# themselves on free ports.
#
# Usage: scripts/apt-deps.sh NAME BINARY:PACKAGE...
#   e.g. scripts/apt-deps.sh cluster-deps etcd:etcd-server etcdctl:etcd-client nginx:nginx
# (NAME prefixes the messages). Several binaries may come from one package.
#
# Progress goes to stderr; apt-get's own output only when it fails.
set -euo pipefail

PROG=$1
shift

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit 1
}

# have NAME: true if NAME is on PATH or in /usr/sbin, /usr/bin (nginx lives in
# /usr/sbin, which a non-root PATH may lack).
have() {
  command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" || -x "/usr/bin/$1" ]]
}

missing=()
for pair in "$@"; do
  bin=${pair%%:*}
  pkg=${pair#*:}
  if ! have "$bin" && [[ " ${missing[*]-} " != *" $pkg "* ]]; then missing+=("$pkg"); fi
done

if ((${#missing[@]} > 0)); then
  [[ "$(id -u)" == 0 ]] || die "missing ${missing[*]}; install them as root: apt-get install ${missing[*]}"
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and apt-get is not available; install them by hand"
  log "installing ${missing[*]} (apt-get)..."
  out="$(mktemp "${TMPDIR:-/tmp}/$PROG.XXXXXX")"
  trap 'rm -f "$out"' EXIT
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$out" 2>&1; then
    cat "$out" >&2
    die "apt-get install ${missing[*]} failed"
  fi
fi

for pair in "$@"; do
  have "${pair%%:*}" || die "${pair%%:*} still missing after install"
done
