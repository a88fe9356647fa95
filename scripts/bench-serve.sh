#!/usr/bin/env bash
# Serve benchmark (a script, not a CI test): requests/s and p99 latency on
# loopback with wrk, for
#   1. a stateless hello handler on `wasm-state serve`,
#   2. the same component on `wasmtime serve` (wasmtime-cli 48) — the anchor,
#   3. a stateful handler doing one read and one durable write (POST /visit)
#      on `wasm-state serve`,
#   4. a counter written only against the standard wasi:keyvalue
#      (examples/guests/kv-counter, POST /hit: one increment) on
#      `wasm-state serve`: durable, shared by every request,
#   5. the same .wasm on `wasmtime serve -S keyvalue`: an in-memory copy per
#      request (nothing is kept),
# all in the same run. Goals: (3) >= 80% of (2); (4) >= (5).
#
# Needs: wrk (apt-get install wrk) and wasmtime-cli 48 on PATH or in
# $WASMTIME (cargo install wasmtime-cli@48.0.8 --locked).
# Usage: scripts/bench-serve.sh [duration-seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-32}
WASMTIME=${WASMTIME:-$(command -v wasmtime || echo /opt/wasmtime-cli/bin/wasmtime)}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
[ -x "$WASMTIME" ] || { echo "wasmtime-cli is missing: cargo install wasmtime-cli@48.0.8 --locked, or set WASMTIME" >&2; exit 1; }

echo "== building (release)" >&2
cargo build --release -q -p wasm-state-host --bin wasm-state
cargo build --release -q --target wasm32-wasip2 --manifest-path examples/guests/Cargo.toml --target-dir target/wasm-guests
WASM=target/wasm-guests/wasm32-wasip2/release
BIN=target/release/wasm-state
DATA=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DATA"; }
trap cleanup EXIT

wait_up() { for _ in $(seq 100); do curl -s -o /dev/null "http://$1/" && return 0; sleep 0.1; done; echo "server on $1 did not start" >&2; exit 1; }

# run_wrk NAME URL [lua] -> prints "NAME req/s p50 p99 non-2xx"
run_wrk() {
  local name=$1 url=$2 script=${3:-}
  local out
  if [ -n "$script" ]; then out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s "$script" "$url"); else out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "$url"); fi
  local rps p50 p99 errors
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  errors=$(echo "$out" | awk '/Non-2xx/ {print $4}')
  echo "$name $rps $p50 $p99 ${errors:-0}"
}

POST_LUA=$(mktemp)
echo 'wrk.method = "POST"' > "$POST_LUA"

echo "== wasm-state serve, stateless hello" >&2
"$BIN" --data "$DATA/a" serve --listen 127.0.0.1:18081 "$WASM/hello-http.wasm" 2>/dev/null & PIDS+=($!)
wait_up 127.0.0.1:18081
A=$(run_wrk ours-hello http://127.0.0.1:18081/)

echo "== wasmtime serve, same component" >&2
"$WASMTIME" serve -S cli --addr 127.0.0.1:18082 "$WASM/hello-http.wasm" 2>/dev/null & PIDS+=($!)
wait_up 127.0.0.1:18082
B=$(run_wrk wasmtime-hello http://127.0.0.1:18082/)

echo "== wasm-state serve, stateful (1 read + 1 durable write)" >&2
"$BIN" --data "$DATA/c" serve --listen 127.0.0.1:18083 "$WASM/customers-http.wasm" 2>/dev/null & PIDS+=($!)
wait_up 127.0.0.1:18083
C=$(run_wrk ours-stateful http://127.0.0.1:18083/visit "$POST_LUA")
VISITS=$(curl -s -X POST http://127.0.0.1:18083/visit)

echo "== wasm-state serve, wasi:keyvalue counter (durable increment)" >&2
"$BIN" --data "$DATA/d" serve --listen 127.0.0.1:18084 "$WASM/kv-counter.wasm" 2>/dev/null & PIDS+=($!)
wait_up 127.0.0.1:18084
D=$(run_wrk ours-keyvalue http://127.0.0.1:18084/hit "$POST_LUA")
HITS=$(curl -s http://127.0.0.1:18084/hits)

echo "== wasmtime serve -S keyvalue, same component (in-memory)" >&2
"$WASMTIME" serve -S cli -S keyvalue --addr 127.0.0.1:18085 "$WASM/kv-counter.wasm" 2>/dev/null & PIDS+=($!)
wait_up 127.0.0.1:18085
E=$(run_wrk wasmtime-keyvalue http://127.0.0.1:18085/hit "$POST_LUA")
WHITS=$(curl -s http://127.0.0.1:18085/hits)

python3 - "$A" "$B" "$C" "$D" "$E" "$DURATION" "$CONNS" "$VISITS" "$HITS" "$WHITS" <<'PY'
import sys
def parse(line):
    name, rps, p50, p99, errs = line.split()
    return name, float(rps), p50, p99, errs
rows = [parse(a) for a in sys.argv[1:6]]
duration, conns, visits, hits, whits = sys.argv[6:11]
base = rows[1][1]
print(f"wrk -t2 -c{conns} -d{duration}s on loopback (same machine, same run)")
print("| server | req/s | p50 | p99 | non-2xx | vs wasmtime serve (hello) |")
print("|---|---|---|---|---|---|")
for name, rps, p50, p99, errs in rows:
    print(f"| {name} | {rps:,.0f} | {p50} | {p99} | {errs} | {rps / base:.2f}x |")
print("goals (issue 13): stateless >= 1.5x, stateful >= 1.0x wasmtime serve hello; keyvalue durable >= in-memory:")
print(f"  stateless {rows[0][1] / base:.2f}x, stateful {rows[2][1] / base:.2f}x, keyvalue {rows[3][1] / rows[4][1]:.2f}x")
print(f"stateful check: last /visit answered {visits}")
print(f"wasi:keyvalue counter: wasm-state / wasmtime -S keyvalue = {rows[3][1] / rows[4][1]:.2f}x; "
      f"count kept by wasm-state {hits.strip()}, by wasmtime {whits.strip()} (in-memory, per request)")
PY
