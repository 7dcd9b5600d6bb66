#!/usr/bin/env bash
# Make the system tools of cluster mode available for tests, CI and local runs:
# etcd + etcdctl (Debian's etcd-server, etcd-client: 3.4) and nginx (Debian's
# nginx: 1.22). Installs only the packages whose binary is missing, which needs
# root and apt-get; does nothing when all are there. confd is not packaged by
# Debian: scripts/confd.sh builds it.
#
# Usage: scripts/cluster-deps.sh
#
# Progress goes to stderr; apt-get's own output only when it fails.
set -euo pipefail

PROG=cluster-deps.sh

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
have etcd || missing+=(etcd-server)
have etcdctl || missing+=(etcd-client)
have nginx || missing+=(nginx)

if ((${#missing[@]} > 0)); then
  [[ "$(id -u)" == 0 ]] || die "missing ${missing[*]}; install them as root: apt-get install ${missing[*]}"
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and apt-get is not available; install them by hand"
  log "installing ${missing[*]} (apt-get)..."
  out="$(mktemp "${TMPDIR:-/tmp}/cluster-deps.XXXXXX")"
  trap 'rm -f "$out"' EXIT
  # The packages' own services are not started here (no init system in
  # containers); tests run the daemons themselves on free ports.
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$out" 2>&1; then
    cat "$out" >&2
    die "apt-get install ${missing[*]} failed"
  fi
fi

for bin in etcd etcdctl nginx; do
  have "$bin" || die "$bin still missing after install"
done
