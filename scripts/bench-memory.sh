#!/usr/bin/env bash
# Memory of `wasm-state serve`: resident memory (RSS) after one request,
# then after N requests held in flight at once have used N instance slots
# of the pooling allocator (the `abuser` test guest's `GET /sleep?ms=1500`
# sleeps inside the guest, so all N run together; a warm slot keeps up to
# its first 1 MiB of linear memory resident, but only the pages the guest
# touched). Bytes per idle warm slot = (RSS after N) - (RSS after 1
# request), divided by N - 1, read after the requests have ended.
#
# Needs curl. Usage: scripts/bench-memory.sh [N...] (default 8 32 128)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNTS=("$@"); [ ${#COUNTS[@]} -gt 0 ] || COUNTS=(8 32 128)
cargo build --release -q -p wasm-state-host --bin wasm-state
cargo build --release -q --target wasm32-wasip2 --manifest-path tests/guests/Cargo.toml \
  --target-dir target/wasm-guests -p abuser
BIN=$PWD/target/release/wasm-state
WASM=$PWD/target/wasm-guests/wasm32-wasip2/release
WORK=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
rss() { awk '/VmRSS/ {print $2 * 1024}' "/proc/$1/status"; }
echo "| app | slots warmed (N) | RSS after 1 request | RSS after N | bytes per extra warm slot |"
echo "|---|---|---|---|---|"
for app in abuser; do
  for n in "${COUNTS[@]}"; do
    rm -rf "$WORK/data"
    "$BIN" --data "$WORK/data" serve --listen 127.0.0.1:18290 --max-instances 256 \
      "$WASM/$app.wasm" 2>/dev/null &
    PID=$!
    until curl -s -o /dev/null http://127.0.0.1:18290/ok; do sleep 0.02; done
    sleep 0.5
    base=$(rss "$PID")
    curls=()
    for _ in $(seq "$n"); do curl -s -o /dev/null "http://127.0.0.1:18290/sleep?ms=1500" & curls+=($!); done
    wait "${curls[@]}"
    sleep 0.5
    warm=$(rss "$PID")
    echo "| $app | $n | $base | $warm | $(( (warm - base) / (n > 1 ? n - 1 : 1) )) |"
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
  done
done
