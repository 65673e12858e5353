#!/usr/bin/env bash
# Conduit's own compatibility tests: official third-party clients (@microsoft/signalr
# with JSON and MessagePack, pysignalr, standardwebhooks) and the real-time guide's own
# code driving a real gateway.
#
#   compat/run.sh                 install, then run every test file
#   compat/run.sh signalr.test.mjs pysignalr_test.py   only these files
#
# Installs the pinned packages (npm ci into compat/node_modules, pip into compat/.venv),
# builds the gateway, then runs each test file against a fresh gateway started by
# compat/with-server.sh. Prints each runner's report, then the total as the last line,
# "N passed, N failed", and exits non-zero if anything failed. Needs cargo, node >= 20,
# npm and python3 (with venv).
#
# Set CONDUIT_COMPAT_VERBOSE=1 to see the SignalR client's own log.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cd "$here" || exit 2

passed=0
failed=0
problems=()

finish() {
  echo
  echo "=== compat total"
  if [ ${#problems[@]} -gt 0 ]; then
    printf 'failed: %s\n' "${problems[@]}"
  fi
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

setup_failed() {
  echo "FAIL setup: $1"
  failed=$((failed + 1))
  problems+=("setup: $1")
  finish
}

echo "=== installing the pinned clients"
npm ci --no-audit --no-fund --loglevel=error || setup_failed "npm ci"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv || setup_failed "python3 -m venv (is python3-venv installed?)"
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt ||
  setup_failed "pip install -r requirements.txt"
cargo build --quiet --locked --manifest-path "$here/../Cargo.toml" -p conduit || setup_failed "cargo build"

# Gateway settings for the tests (with-server.sh passes CONDUIT_* on to the gateway):
# usage metrics often enough to see one, webhook retries after about a second.
export CONDUIT_USAGE_METRICS_INTERVAL_MS="${CONDUIT_USAGE_METRICS_INTERVAL_MS:-500}"
export CONDUIT_WEBHOOK_RETRY_SCHEDULE="${CONDUIT_WEBHOOK_RETRY_SCHEDULE:-1,1,1,2,5,10}"
export CONDUIT_LOCAL_WORK_MS="${CONDUIT_LOCAL_WORK_MS:-300}"

if [ $# -gt 0 ]; then
  files=("$@")
else
  files=(signalr.test.mjs reconnect.test.mjs polling.test.mjs webhooks.test.mjs pysignalr_test.py)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for file in "${files[@]}"; do
  echo
  echo "=== $file"
  out="$work/$file.out"
  case "$file" in
    *.mjs)
      tap="$work/$file.tap"
      # Spec report on the terminal, TAP into a file for the counts.
      timeout -k 10 240 ./with-server.sh node --test --test-timeout=90000 \
        --test-reporter=spec --test-reporter-destination=stdout \
        --test-reporter=tap --test-reporter-destination="$tap" \
        "$file" 2>&1 | tee "$out"
      status=${PIPESTATUS[0]}
      p=$(grep -E '^# pass [0-9]+$' "$tap" 2>/dev/null | tail -n 1 | awk '{print $3}')
      f=$(grep -E '^# fail [0-9]+$' "$tap" 2>/dev/null | tail -n 1 | awk '{print $3}')
      c=$(grep -E '^# cancelled [0-9]+$' "$tap" 2>/dev/null | tail -n 1 | awk '{print $3}')
      if [ -n "$f" ] && [ -n "$c" ]; then f=$((f + c)); fi
      ;;
    *.py)
      timeout -k 10 120 ./with-server.sh .venv/bin/python "$file" 2>&1 | tee "$out"
      status=${PIPESTATUS[0]}
      summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
      p=$(awk '{print $1}' <<<"$summary")
      f=$(awk '{print $3}' <<<"$summary")
      ;;
    *)
      echo "FAIL $file: not a test file this script knows how to run"
      status=1 p="" f=""
      ;;
  esac

  if [ -z "$p" ] || [ -z "$f" ]; then
    echo "FAIL $file: ended (exit $status) without a report"
    p=${p:-0}
    f=1
  elif [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "FAIL $file: exit status $status despite reporting no failure"
    f=1
  fi
  passed=$((passed + p))
  failed=$((failed + f))
  [ "$f" -eq 0 ] || problems+=("$file ($f)")
done

finish
