#!/usr/bin/env bash
# Make the system tools of the operations tests available for tests, CI and
# local runs: chromium (Debian's package; the page tests drive it with
# playwright-core, whose own browser download does not work here) and
# prometheus (Debian's package: the server and promtool), installed when
# missing (scripts/apt-deps.sh).
#
# Usage: scripts/ops-deps.sh
exec "$(dirname "$0")/apt-deps.sh" ops-deps.sh chromium:chromium prometheus:prometheus promtool:prometheus
