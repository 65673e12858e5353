#!/usr/bin/env bash
# Builds the echo_server example, installs the pinned official JavaScript client and runs
# the compatibility tests. Prints "N passed, N failed" last; exits non-zero on failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
crate="$(cd "$here/../.." && pwd)"
fail() {
  echo "run.sh: $1" >&2
  echo "0 passed, 1 failed"
  exit 1
}
cd "$crate"
cargo build -p signalr --example echo_server || fail "building echo_server failed"
target_dir="$(cargo metadata --format-version 1 --no-deps \
  | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"
export SIGNALR_ECHO_SERVER="$target_dir/debug/examples/echo_server"
[ -x "$SIGNALR_ECHO_SERVER" ] || fail "no server binary at $SIGNALR_ECHO_SERVER"
cd "$here"
npm ci --no-audit --no-fund --loglevel=error >/dev/null || fail "npm ci failed"
node compat.test.js
