#!/usr/bin/env bash
# Memory of `wasm-state serve`: resident memory (RSS) idle, then after N
# concurrent connections have warmed N instance slots of the pooling
# allocator (each request instantiates into a slot; a warm slot keeps its
# first 1 MiB of linear memory resident). Bytes per idle warm slot =
# (RSS after warming N) - (RSS after 1 request), divided by N - 1, read
# after the load has stopped.
#
# Needs wrk and curl. Usage: scripts/bench-memory.sh [N...] (default 8 32 128)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNTS=("$@"); [ ${#COUNTS[@]} -gt 0 ] || COUNTS=(8 32 128)
cargo build --release -q -p wasm-state-host --bin wasm-state
cargo build --release -q --target wasm32-wasip2 --manifest-path examples/guests/Cargo.toml \
  --target-dir target/wasm-guests -p hello-http -p customers-http
BIN=$PWD/target/release/wasm-state
WASM=$PWD/target/wasm-guests/wasm32-wasip2/release
WORK=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
rss() { awk '/VmRSS/ {print $2 * 1024}' "/proc/$1/status"; }
echo "| app | slots warmed (N) | RSS after 1 request | RSS after N | bytes per extra warm slot |"
echo "|---|---|---|---|---|"
for app in hello-http customers-http; do
  for n in "${COUNTS[@]}"; do
    rm -rf "$WORK/data"
    "$BIN" --data "$WORK/data" serve --listen 127.0.0.1:18290 --max-instances 256 \
      "$WASM/$app.wasm" 2>/dev/null &
    PID=$!
    until curl -s -o /dev/null http://127.0.0.1:18290/; do sleep 0.02; done
    sleep 0.5
    base=$(rss "$PID")
    wrk -t2 -c"$n" -d3s http://127.0.0.1:18290/ >/dev/null
    sleep 1
    warm=$(rss "$PID")
    echo "| $app | $n | $base | $warm | $(( (warm - base) / (n > 1 ? n - 1 : 1) )) |"
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
  done
done
