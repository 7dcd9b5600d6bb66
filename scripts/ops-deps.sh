#!/usr/bin/env bash
# Make the system tools of the operations tests available for tests, CI and
# local runs: chromium (Debian's package; the page tests drive it with
# playwright-core, whose own browser download does not work here) and
# prometheus (Debian's package: the server and promtool). Installs only the
# packages whose binary is missing, which needs root and apt-get; does nothing
# when all are there.
#
# Usage: scripts/ops-deps.sh
#
# Progress goes to stderr; apt-get's own output only when it fails.
set -euo pipefail

PROG=ops-deps.sh

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit 1
}

have() {
  command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/bin/$1" ]]
}

missing=()
have chromium || missing+=(chromium)
{ have prometheus && have promtool; } || missing+=(prometheus)

if ((${#missing[@]} > 0)); then
  [[ "$(id -u)" == 0 ]] || die "missing ${missing[*]}; install them as root: apt-get install ${missing[*]}"
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and apt-get is not available; install them by hand"
  log "installing ${missing[*]} (apt-get)..."
  out="$(mktemp "${TMPDIR:-/tmp}/ops-deps.XXXXXX")"
  trap 'rm -f "$out"' EXIT
  # Prometheus's own service is not started here (no init system in
  # containers); the test runs it itself on a free port.
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$out" 2>&1; then
    cat "$out" >&2
    die "apt-get install ${missing[*]} failed"
  fi
fi

for bin in chromium prometheus promtool; do
  have "$bin" || die "$bin still missing after install"
done
