#!/usr/bin/env bash
# Runs one test file N times in a row while two busy loops keep both cores
# loaded: delivery promises are tested where they break. Needs a build first
# (npm run build). Prints one line per run and a final count; exits 1 on any failure.
#
#   scripts/under-load.sh 20 test/nsq-outage.test.ts
set -uo pipefail
runs=${1:?usage: scripts/under-load.sh RUNS TEST_FILE}
file=${2:?usage: scripts/under-load.sh RUNS TEST_FILE}
cd "$(dirname "$0")/.."
node -e 'for (;;) {}' & hog1=$!
node -e 'for (;;) {}' & hog2=$!
trap 'kill $hog1 $hog2 2>/dev/null' EXIT
pass=0; fail=0
for i in $(seq 1 "$runs"); do
  log=$(mktemp)
  if npx tap "$file" >"$log" 2>&1; then pass=$((pass + 1)); else fail=$((fail + 1)); grep -E '^\s*not ok' "$log" | head -5; fi
  rm -f "$log"
  echo "run $i: $pass passed, $fail failed"
done
[ "$fail" -eq 0 ]
