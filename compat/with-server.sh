#!/usr/bin/env bash
# Runs a command against a freshly started gateway (debug build, a temporary data
# directory, a free loopback port, loopback webhook URLs allowed), with
#   CONDUIT_URL, CONDUIT_KEY, CONDUIT_WEBHOOK_SECRET (the first-start `default` key),
#   CONDUIT_MASTER_KEY, CONDUIT_BIN, CONDUIT_DATA_DIR, CONDUIT_PORT
# in its environment. Stops the gateway afterwards and passes on the exit status.
#
# For tests that restart the gateway themselves, it also exports
#   CONDUIT_LISTEN, CONDUIT_WEBHOOK_ALLOW_CIDRS, CONDUIT_LOCAL_WORK_MS, CONDUIT_LOG
#     (with CONDUIT_DATA_DIR and CONDUIT_MASTER_KEY: what `$CONDUIT_BIN serve` needs
#     to come back as the same gateway),
#   CONDUIT_GATEWAY_LOG  the gateway's log (a restarted gateway should append to it), and
#   CONDUIT_PID_FILE  a file holding the gateway's process id. A test that restarts
#     the gateway writes the new process's id there; whatever process it names is
#     stopped at the end too.
# Other CONDUIT_* settings in the caller's environment (e.g.
# CONDUIT_USAGE_METRICS_INTERVAL_MS, CONDUIT_WEBHOOK_RETRY_SCHEDULE) reach the gateway.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --quiet --locked --manifest-path "$root/Cargo.toml" -p conduit || exit 1
bin="${CARGO_TARGET_DIR:-$root/target}/debug/conduit"

data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
master="condt_master_$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
log="$data/server.log"

CONDUIT_DATA_DIR="$data" CONDUIT_LISTEN="127.0.0.1:$port" CONDUIT_MASTER_KEY="$master" \
  CONDUIT_WEBHOOK_ALLOW_CIDRS="127.0.0.0/8" CONDUIT_LOCAL_WORK_MS="${CONDUIT_LOCAL_WORK_MS:-300}" \
  CONDUIT_LOG="${CONDUIT_LOG:-warn}" "$bin" serve >"$log" 2>&1 &
pid=$!
pid_file="$data/gateway.pid"
echo "$pid" >"$pid_file"
stop_gateway() {
  local current
  current=$(cat "$pid_file" 2>/dev/null)
  if [ -n "$current" ] && [ "$current" != "$pid" ]; then
    kill "$current" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$current" 2>/dev/null || break; sleep 0.1; done
  fi
  kill $pid 2>/dev/null
  wait $pid 2>/dev/null
  rm -rf "$data"
}
trap stop_gateway EXIT

for _ in $(seq 1 100); do
  if grep -q "webhook signing secret" "$log" 2>/dev/null && curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
    break
  fi
  sleep 0.1
done
key=$(grep "virtual key \`default\`" "$log" | awk '{print $NF}')
secret=$(grep "webhook signing secret" "$log" | awk '{print $NF}')
if [ -z "$key" ] || [ -z "$secret" ]; then
  echo "FAIL setup: the gateway did not start; its log:"
  cat "$log"
  echo "0 passed, 1 failed"
  exit 1
fi

export CONDUIT_URL="http://127.0.0.1:$port" CONDUIT_KEY="$key" CONDUIT_WEBHOOK_SECRET="$secret"
export CONDUIT_MASTER_KEY="$master" CONDUIT_BIN="$bin" CONDUIT_DATA_DIR="$data" CONDUIT_PORT="$port"
export CONDUIT_LISTEN="127.0.0.1:$port" CONDUIT_WEBHOOK_ALLOW_CIDRS="127.0.0.0/8"
export CONDUIT_LOCAL_WORK_MS="${CONDUIT_LOCAL_WORK_MS:-300}" CONDUIT_LOG="${CONDUIT_LOG:-warn}"
export CONDUIT_PID_FILE="$pid_file" CONDUIT_GATEWAY_LOG="$log"
"$@"
status=$?
if [ $status -ne 0 ]; then
  echo "--- gateway log (last 40 lines)"
  tail -n 40 "$log"
fi
exit $status
